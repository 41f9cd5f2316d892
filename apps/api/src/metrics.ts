// The API's Prometheus metrics: requests, refusals, accepted writes, and the fleet-wide
// queue figures read from Redis at scrape time.
import { withTimeout } from "@ingest/runtime";
import { BULK_JOB, JOB_NAMES, type Queues } from "@ingest/jobs";
import type { Request, RequestHandler, Response } from "express";
import client from "prom-client";
import { AppError } from "./errors.js";
import { joinClusterMetrics } from "./metrics-cluster.js";
import { registerOpsMetrics, type OpsSources } from "./metrics-ops.js";
import { registerPoolMetrics } from "@ingest/db";
import type pg from "pg";

const JOB_STATES = ["waiting", "delayed", "prioritized", "active", "completed", "failed"] as const;
// Queue depth is read from Redis at scrape time; a slow Redis must not hang the scrape.
const SCRAPE_TIMEOUT_MS = 1_000;
const CACHE_RESULTS = ["HIT", "STALE", "MISS", "BYPASS"] as const;
const SHED_REASONS = ["event_loop", "queue_full", "redis_memory"] as const;

export type Metrics = ReturnType<typeof createMetrics>;

type MetricsOptions = {
  eventLoopDelay?: () => number;
  /** A node:cluster process: a scrape answers the sum over all the API's processes, gathered by the primary. */
  clustered?: boolean;
  /** Redis memory and readiness, for the operators' alerts. */
  ops?: OpsSources;
  /** The PostgreSQL pool, whose use is exported. */
  pool?: pg.Pool;
};

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

export function createMetrics(queues: Queues, opts: MetricsOptions = {}) {
  const registry = new client.Registry();
  collectProcessMetrics(registry);
  const registers = [registry];

  const httpDuration = new client.Histogram({
    name: "http_request_duration_seconds",
    help: "HTTP request latency by route template, method and status",
    labelNames: ["method", "route", "status"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });
  const cache = new client.Counter({
    name: "ingest_cache_reads_total",
    help: "Catalog reads by how the cache served them (HIT, STALE, MISS, BYPASS)",
    labelNames: ["result"] as const,
    registers,
  });
  const shed = new client.Counter({
    name: "ingest_shed_requests_total",
    help: "Requests refused with 503 to protect the service (event_loop: lag over SHED_LAG_MS; queue_full: waiting jobs over QUEUE_HIGH_WATER; redis_memory: the queue Redis over QUEUE_MEMORY_HIGH_WATER_PCT of its maxmemory)",
    labelNames: ["reason"] as const,
    registers,
  });
  const rateLimited = new client.Counter({
    name: "ingest_rate_limited_requests_total",
    help: "Writes refused with 429 by the per-client rate limit",
    registers,
  });
  // `job_name`, not `job`: Prometheus reserves `job` for the scrape job.
  const writes = new client.Counter({
    name: "ingest_writes_accepted_total",
    help: "Writes stored as jobs (202), by job name; replays of an Idempotency-Key are not counted",
    labelNames: ["job_name"] as const,
    registers,
  });
  const bulkLines = new client.Counter({
    name: "ingest_bulk_lines_total",
    help: "Lines of POST /products/bulk requests, by verdict (accepted: stored in a batch; invalid: refused and reported)",
    labelNames: ["verdict"] as const,
    registers,
  });
  // Every label value an alert may watch exists from the start at 0, so increase() sees
  // the first event (a series born at 1 has no increase).
  for (const result of CACHE_RESULTS) cache.inc({ result }, 0);
  for (const reason of SHED_REASONS) shed.inc({ reason }, 0);
  for (const job_name of [...JOB_NAMES, BULK_JOB]) writes.inc({ job_name }, 0);
  for (const verdict of ["accepted", "invalid"]) bulkLines.inc({ verdict }, 0);

  // Across cluster processes: the worst process's delay, not a sum.
  new client.Gauge({
    name: "ingest_event_loop_delay_seconds",
    help: "Event-loop delay the load shedder acts on (p99 over the last window; the worst API process)",
    aggregator: "max",
    registers,
    collect() {
      this.set((opts.eventLoopDelay?.() ?? 0) / 1_000);
    },
  });
  new client.Gauge({
    name: "ingest_queue_jobs",
    help: "Jobs in each queue by state (fleet-wide, read from Redis)",
    labelNames: ["queue", "state"] as const,
    // Every API process reads the same figure: across processes it is taken once, not summed.
    aggregator: "max",
    registers,
    async collect() {
      await withTimeout(
        Promise.all(
          Object.entries(queues).map(async ([name, queue]) => {
            const counts = await queue.getJobCounts(...JOB_STATES);
            for (const state of JOB_STATES) this.set({ queue: name, state }, counts[state] ?? 0);
          }),
        ),
        SCRAPE_TIMEOUT_MS,
      ).catch(() => this.reset());
    },
  });
  // BullMQ's own per-queue metrics (workers record them): a running total kept in Redis,
  // exported as the counter it is.
  new client.Counter({
    name: "ingest_jobs_finished_total",
    help: "Jobs finished per queue and outcome since metrics began (fleet-wide, from BullMQ metrics)",
    labelNames: ["queue", "outcome"] as const,
    aggregator: "max",
    registers,
    async collect() {
      const counts = await withTimeout(
        Promise.all(
          Object.entries(queues).flatMap(([queue, q]) =>
            (["completed", "failed"] as const).map(async (outcome) => {
              const m = await q.getMetrics(outcome, 0, 0);
              return { labels: { queue, outcome }, value: Number(m.meta.count) || 0 };
            }),
          ),
        ),
        SCRAPE_TIMEOUT_MS,
      ).catch(() => []);
      // Set, not added to: the total lives in Redis. Without an answer, no series.
      this.reset();
      for (const { labels, value } of counts) this.inc(labels, value);
    },
  });

  registerOpsMetrics(registry, queues, opts.ops ?? {});
  if (opts.pool) registerPoolMetrics(registry, { api: opts.pool });

  /** Times a finished request under its route template; counts how the cache served reads. */
  const observeRequest = (req: Request, res: Response, seconds: number) => {
    // Only route templates become labels; anything unmatched shares one, to bound cardinality.
    const route = req.route ? `${req.baseUrl}${String(req.route.path)}` : "unmatched";
    httpDuration.observe({ method: req.method, route, status: res.statusCode }, seconds);
    const served = res.getHeader("x-cache");
    if (typeof served === "string") cache.inc({ result: served });
  };

  const scrape = opts.clustered ? joinClusterMetrics(registry) : () => registry.metrics();
  const handler: RequestHandler = async (_req, res) => {
    let body: string;
    try {
      body = await scrape();
    } catch {
      // A partial sum would read as counters going backwards: no answer is better.
      throw new AppError("unavailable", "The metrics of every API process could not be gathered; retry shortly.", { retryAfterS: 1 });
    }
    res.set("Content-Type", registry.contentType).send(body);
  };

  return { registry, observeRequest, handler, shed, rateLimited, writes, bulkLines };
}
