import { createDb } from "@ingest/db";
import {
  closeQueues,
  createQueues,
  createWorkerConnection,
  QUEUE_NAMES,
  warnUnlessNoEviction,
  type QueueName,
} from "@ingest/jobs";
import { Worker } from "bullmq";
import { pruneLedger } from "./apply.js";
import { DEFAULT_CONCURRENCY, loadEnv } from "./env.js";
import { createLogger } from "./logger.js";
import { createProcessor } from "./processor.js";

const env = (() => {
  try {
    return loadEnv();
  } catch (err) {
    console.error((err as Error).message);
    process.exit(1);
  }
})();

const log = createLogger(env.LOG_LEVEL, env.NODE_ENV === "development" && process.stdout.isTTY);
const { db, close: closeDb } = createDb(env.DATABASE_URL, { max: env.DB_POOL_SIZE, applicationName: "ingest-worker" });
const connection = createWorkerConnection(env.REDIS_URL);
connection.on("error", throttled((err: Error) => log.error({ err }, "redis connection error")));
const queues = createQueues(connection, env.QUEUE_PREFIX, throttled((err: Error, queue: QueueName) => log.error({ err, queue }, "queue error")));

const workers = QUEUE_NAMES.map((name) => {
  const worker = new Worker(name, createProcessor(name, {
    db,
    queues,
    redis: connection,
    prefix: env.QUEUE_PREFIX,
    log,
    orderWaitMaxMs: env.ORDER_WAIT_MAX_MS,
  }), {
    connection,
    prefix: env.QUEUE_PREFIX,
    concurrency: env.WORKER_CONCURRENCY || DEFAULT_CONCURRENCY[name],
    // A killed worker's jobs come back after the lock expires; tolerate a few kills.
    maxStalledCount: 3,
    lockDuration: env.LOCK_DURATION_MS,
    stalledInterval: env.STALLED_INTERVAL_MS,
  });
  worker.on("error", throttled((err: Error) => log.error({ err, queue: name }, "worker error")));
  worker.on("failed", (job, err) => {
    if (job && job.attemptsMade >= (job.opts.attempts ?? 1)) log.error({ jobId: job.id, err }, "job failed for good");
  });
  return worker;
});

void warnUnlessNoEviction(connection, (obj, msg) => log.warn(obj, msg));
log.info({ queues: QUEUE_NAMES, prefix: env.QUEUE_PREFIX, pid: process.pid }, "worker started");

const pruneTimer = setInterval(
  () => void pruneLedger(db).catch((err) => log.warn({ err }, "ledger prune failed")),
  3_600_000,
);
pruneTimer.unref();

let closing: Promise<void> | undefined;
function close(signal: string): Promise<void> {
  closing ??= (async () => {
    log.info({ signal }, "shutting down: finishing active jobs");
    clearInterval(pruneTimer);
    const graceful = Promise.allSettled(workers.map((w) => w.close()));
    const deadline = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), env.SHUTDOWN_TIMEOUT_MS).unref());
    if ((await Promise.race([graceful, deadline])) === "timeout") {
      // Jobs still running are left to another worker: their locks lapse and they are retried.
      log.warn({ timeoutMs: env.SHUTDOWN_TIMEOUT_MS }, "active jobs did not finish in time; closing anyway");
      await Promise.allSettled(workers.map((w) => w.close(true)));
    }
    await closeQueues(queues);
    await connection.quit().catch(() => connection.disconnect());
    await closeDb().catch((err) => log.warn({ err }, "closing the pool failed"));
    log.info("worker stopped");
  })();
  return closing;
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => void close(signal).then(() => process.exit(0)));
}

/** Logs the first of a burst of repeated errors, then at most one per 10 s. */
function throttled<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
  let last = 0;
  return (...args) => {
    const now = Date.now();
    if (now - last < 10_000) return;
    last = now;
    fn(...args);
  };
}
