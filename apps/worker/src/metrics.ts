// A worker process's Prometheus metrics (its jobs, batches and emails), and the small
// server for them and /healthz.
import { JOBS, JOB_NAMES, QUEUE_NAMES } from "@ingest/jobs";
import { createServer, type Server } from "node:http";
import client from "prom-client";
import type { HealthAnswer } from "./health.js";

export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;

// The only kind of email sent so far; the `email` label leaves room for more.
const EMAILS = ["welcome"] as const;

/**
 * Node's default metrics, less three gauges named like counters (`nodejs_active_*_total`),
 * which Prometheus's linter refuses; their per-type siblings (`nodejs_active_handles`, …)
 * carry the same counts.
 */
function collectProcessMetrics(registry: client.Registry): void {
  client.collectDefaultMetrics({ register: registry });
  for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
    registry.removeSingleMetric(name);
  }
}

/** This process's view: how long its jobs took and how they ended. */
export function createWorkerMetrics() {
  const registry = new client.Registry();
  collectProcessMetrics(registry);
  const registers = [registry];
  // `job_name`, not `job`: Prometheus reserves `job` for the scrape job.
  const duration = new client.Histogram({
    name: "ingest_job_duration_seconds",
    help: "Time to apply a job in this worker process, by queue, job name and outcome",
    labelNames: ["queue", "job_name", "outcome"] as const,
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const failures = new client.Counter({
    name: "ingest_job_failures_total",
    help: "Job attempts that failed in this worker process (kind: transient retries, permanent ones do not)",
    labelNames: ["queue", "job_name", "kind"] as const,
    registers,
  });
  const orderWaits = new client.Counter({
    name: "ingest_job_order_waits_total",
    help: "Times an edit was put back to wait for an earlier edit of the same product",
    registers,
  });
  const batchSize = new client.Histogram({
    name: "ingest_worker_batch_size",
    help: "Writes applied together in one transaction by this worker process",
    buckets: [1, 2, 5, 10, 20, 50, 100, 200],
    registers,
  });
  const carrierWrites = new client.Histogram({
    name: "ingest_worker_carrier_writes",
    help: "Writes held by each carrier job this worker process took (the API gathers the writes it accepts close together into one job)",
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
    registers,
  });
  const batchFallbacks = new client.Counter({
    name: "ingest_worker_batch_fallbacks_total",
    help: "Batches that could not commit as a whole and were applied job by job",
    registers,
  });
  const bulkLines = new client.Counter({
    name: "ingest_bulk_lines_applied_total",
    help: "Bulk batch lines this worker process finished, by outcome (completed, or failed for good)",
    labelNames: ["outcome"] as const,
    registers,
  });
  const emailsSent = new client.Counter({
    name: "ingest_emails_sent_total",
    help: "Emails this worker process handed to the SMTP server (or logged, without SMTP_URL), by email",
    labelNames: ["email"] as const,
    registers,
  });
  const emailsDispatched = new client.Counter({
    name: "ingest_emails_dispatched_total",
    help: "Emails this worker process moved from the email_sends outbox to the emails queue, by email",
    labelNames: ["email"] as const,
    registers,
  });
  const emailFailures = new client.Counter({
    name: "ingest_email_failures_total",
    help: "Email attempts that failed in this worker process (kind: transient retries, final ones do not)",
    labelNames: ["email", "kind"] as const,
    registers,
  });
  const deferred = new client.Counter({
    name: "ingest_jobs_deferred_total",
    help: "Jobs this worker process left for another (reason newer_format: written by a newer release than it reads), by queue",
    labelNames: ["queue", "reason"] as const,
    registers,
  });
  // Every label value an alert may watch exists from the start at 0, so increase() sees
  // the first failure (a series born at 1 has no increase).
  for (const job_name of JOB_NAMES) {
    for (const kind of ["transient", "permanent"]) failures.inc({ queue: JOBS[job_name].queue, job_name, kind }, 0);
  }
  for (const outcome of ["completed", "failed"]) bulkLines.inc({ outcome }, 0);
  for (const queue of QUEUE_NAMES) deferred.inc({ queue, reason: "newer_format" }, 0);
  for (const email of EMAILS) {
    emailsSent.inc({ email }, 0);
    emailsDispatched.inc({ email }, 0);
    for (const kind of ["transient", "final"]) emailFailures.inc({ email, kind }, 0);
  }
  return { registry, duration, failures, orderWaits, batchSize, carrierWrites, batchFallbacks, bulkLines, emailsSent, emailsDispatched, emailFailures, deferred };
}

/** One micro-batch applied: its size, and whether it fell back to one by one. */
export function observeBatch(metrics: WorkerMetrics, size: number, fellBack: boolean): void {
  metrics.batchSize.observe(size);
  if (fellBack) metrics.batchFallbacks.inc();
}

/** /metrics and /healthz on their own port; nothing else is served. */
export function serveWorkerMetrics(metrics: WorkerMetrics, port: number, health: () => HealthAnswer): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === "/metrics") {
      metrics.registry.metrics().then(
        (body) => res.writeHead(200, { "Content-Type": metrics.registry.contentType }).end(body),
        () => res.writeHead(500).end(),
      );
    } else if (req.url === "/healthz") {
      const { status, headers, body } = health();
      res.writeHead(status, headers).end(body);
    } else {
      res.writeHead(404, { "Content-Type": "application/problem+json" }).end(
        JSON.stringify({ type: "about:blank", title: "Not found", status: 404, detail: "Only /metrics and /healthz are served here." }),
      );
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, () => resolve(server));
  });
}
