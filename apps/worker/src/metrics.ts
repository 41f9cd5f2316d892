import { createServer, type Server } from "node:http";
import client from "prom-client";
import type { HealthAnswer } from "./health.js";

export type WorkerMetrics = ReturnType<typeof createWorkerMetrics>;

/** This process's view: how long its jobs took and how they ended. */
export function createWorkerMetrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const duration = new client.Histogram({
    name: "ingest_job_duration_seconds",
    help: "Time to apply a job in this worker process, by queue, job name and outcome",
    labelNames: ["queue", "job", "outcome"] as const,
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const failures = new client.Counter({
    name: "ingest_job_failures_total",
    help: "Job attempts that failed in this worker process (kind: transient retries, permanent ones do not)",
    labelNames: ["queue", "job", "kind"] as const,
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
  return { registry, duration, failures, orderWaits, batchSize, carrierWrites, batchFallbacks, bulkLines, emailsSent, emailsDispatched, emailFailures };
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
