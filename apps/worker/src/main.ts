import { createCacheConnection, createCatalogInvalidator } from "@ingest/catalog";
import { CLOSE_GRACE_MS, exitOnStopSignals, listenFailure, throttled } from "@ingest/config";
import { createDb, registerPoolMetrics } from "@ingest/db";
import type { Pool } from "pg";
import {
  BULK_QUEUE,
  closeQueues,
  createQueues,
  createRedisWatchdog,
  createWorkerConnection,
  EMAILS_QUEUE,
  hasHashTag,
  MAINTENANCE_QUEUE,
  QUEUE_NAMES,
  upsertMaintenanceScheduler,
  usePayloadVersion,
  warnUnlessNoEviction,
  WRITE_QUEUES,
  type QueueName,
} from "@ingest/jobs";
import { bullmqTelemetry, flushTracing } from "@ingest/telemetry";
import { Worker, type Processor } from "bullmq";
import type { Server } from "node:http";
import { setPriority } from "node:os";
import { createBulkProcessor } from "./bulk.js";
import { createCommitInvalidation } from "./catalog-invalidation.js";
import { createWelcomeDispatcher } from "./email/dispatch.js";
import { createMailer, domainOf } from "./email/mailer.js";
import { createWelcomeRelay } from "./email/relay.js";
import { createEmailProcessor } from "./email/welcome.js";
import { DEFAULT_CONCURRENCY, loadEnv } from "./env.js";
import { createWorkerHealth } from "./health.js";
import { createLogger } from "./logger.js";
import { createMaintenanceProcessor } from "./maintenance.js";
import { createWorkerMetrics, serveWorkerMetrics } from "./metrics.js";
import { createTurnSignal } from "./ordering.js";
import { createAnalyzer } from "./statistics.js";
import { createWritesProcessor } from "./writes-processor.js";

const env = (() => {
  try {
    return loadEnv();
  } catch (err) {
    console.error((err as Error).message);
    process.exit(1);
  }
})();

// No statement of the worker waits longer than this for a lock: one held by something
// stuck fails it, and its job retries.
const LOCK_TIMEOUT_MS = 10_000;

const log = createLogger(env.LOG_LEVEL, env.NODE_ENV === "development" && process.stdout.isTTY);
usePayloadVersion(env.PAYLOAD_VERSION);
if (env.WORKER_NICE > 0) {
  try {
    setPriority(env.WORKER_NICE);
  } catch (err) {
    log.warn({ err, nice: env.WORKER_NICE }, "could not lower the worker's CPU priority");
  }
}
if (env.REDIS_CLUSTER_NODES && !hasHashTag(env.QUEUE_PREFIX)) {
  console.error(`QUEUE_PREFIX must contain a {hash tag} on a Redis Cluster (REDIS_CLUSTER_NODES), got "${env.QUEUE_PREFIX}"`);
  process.exit(1);
}
const { db, pool, close: closeDb } = createDb(env.DATABASE_URL, { max: env.DB_POOL_SIZE, applicationName: "ingest-worker", lockTimeoutMs: LOCK_TIMEOUT_MS, genericPlans: true, statementTimeoutMs: env.DB_STATEMENT_TIMEOUT_MS });
const connection = createWorkerConnection({ url: env.REDIS_URL, clusterNodes: env.REDIS_CLUSTER_NODES });
connection.on("error", throttled((err: Error) => log.error({ err }, "redis connection error")));
// Before any Worker exists: each duplicates the connection for its blocking fetch.
const watchdog = createRedisWatchdog({
  timeoutMs: env.REDIS_PING_TIMEOUT_MS,
  onDrop: (name, why) => log.warn({ connection: name, why }, "redis connection not answering: reconnecting"),
});
watchdog.watch(connection, { name: "queue", critical: true, blockingCopies: true });
const queues = createQueues(connection, env.QUEUE_PREFIX, throttled((err: Error, queue: QueueName) => log.error({ err, queue }, "queue error")));

const metrics = createWorkerMetrics();
// The email lane's pool joins when the lane starts.
const pools: Record<string, Pool> = { worker: pool };
registerPoolMetrics(metrics.registry, pools);
// Fresh statistics for the tables the writes fill, so no cached plan scans them whole.
const analyzer = createAnalyzer(db, log);
analyzer.start();

// Its own connection: a dead cache Redis fails fast here and never blocks the queue's.
// A second per command: a busy machine's cache still answers within it, so the next
// read after a job completes misses (a dead one is skipped for 5 s after three tries).
const cacheRedis = createCacheConnection({ url: env.CACHE_REDIS_URL, clusterNodes: env.CACHE_REDIS_CLUSTER_NODES }, { connectionName: "ingest-worker-cache", commandTimeoutMs: 1_000 });
cacheRedis.on("error", throttled((err: Error) => log.warn({ err: err.message }, "cache redis unavailable: invalidations wait")));
watchdog.watch(cacheRedis, { name: "cache" });
const catalog = createCommitInvalidation(createCatalogInvalidator({ redis: cacheRedis, prefix: env.CACHE_PREFIX }), cacheRedis, log);

/** A worker of one lane (a write queue, bulk, emails): the same locks, stall tolerance and metrics for all. */
function laneWorker<D>(name: QueueName, processor: Processor<D>, concurrency: number): Worker<D> {
  const worker = new Worker<D>(name, processor, {
    connection,
    prefix: env.QUEUE_PREFIX,
    concurrency,
    // A killed worker's jobs come back after the lock expires; tolerate a few kills.
    maxStalledCount: 5,
    lockDuration: env.LOCK_DURATION_MS,
    stalledInterval: env.STALLED_INTERVAL_MS,
    // Fleet-wide finished counts per minute, kept a week; the API exports them.
    metrics: { maxDataPoints: 7 * 24 * 60 },
    // BullMQ's process span of each job, continuing the trace of its add, when tracing is on.
    ...bullmqTelemetry(),
  });
  worker.on("error", throttled((err: Error) => log.error({ err, queue: name }, "worker error")));
  return worker;
}

// Wakes this process's edits waiting for an earlier edit of their product when one commits here.
const turns = createTurnSignal();
const applying = { db, queues, orderWaitMaxMs: env.ORDER_WAIT_MAX_MS, turns };

// The welcome emails of registrations go to the emails queue as they commit.
const relay = createWelcomeRelay({
  queue: queues[EMAILS_QUEUE],
  retry: { attempts: env.EMAIL_ATTEMPTS, delayMs: env.EMAIL_RETRY_DELAY_MS },
  log,
  waitMs: env.EMAIL_RELAY_WAIT_MS,
});

const workers: Worker[] = WRITE_QUEUES.map((name) => {
  const processor = createWritesProcessor(name, { ...applying, chunkSize: env.WORKER_BATCH_SIZE, log, metrics, catalog, ...(name === "registrations" ? { afterApplied: async (applied) => relay.add(applied) } : {}) });
  const worker = laneWorker(name, processor, env.WORKER_CONCURRENCY || DEFAULT_CONCURRENCY[name]);
  worker.on("failed", (job, err) => {
    if (job && (err.name === "UnrecoverableError" || job.attemptsMade >= (job.opts.attempts ?? 1))) log.error({ jobId: job.id, err }, "job failed for good");
  });
  return worker;
});

// The bulk lane: its own worker and concurrency, so batches never hold up interactive writes.
if (env.WORKER_BULK_CONCURRENCY > 0) {
  const processor = createBulkProcessor({ ...applying, chunkSize: env.BULK_CHUNK_SIZE, log, metrics, catalog });
  workers.push(laneWorker(BULK_QUEUE, processor, env.WORKER_BULK_CONCURRENCY));
}

const maintenance = new Worker(MAINTENANCE_QUEUE, createMaintenanceProcessor({ db, queues, log, metrics }), {
  connection,
  prefix: env.QUEUE_PREFIX,
  concurrency: 1,
});
maintenance.on("error", throttled((err: Error) => log.error({ err, queue: MAINTENANCE_QUEUE }, "worker error")));
workers.push(maintenance);
upsertMaintenanceScheduler(queues[MAINTENANCE_QUEUE], env.MAINTENANCE_EVERY_MS || undefined).catch((err) =>
  log.error({ err }, "could not schedule maintenance"),
);

// Emails have a pool of their own: a send holds its connection (the email_sends row
// lock) while the SMTP server answers, and a slow server must not starve the writes.
// The lane also dispatches: it moves the welcome emails registrations left pending in
// email_sends to the emails queue, off the registrations' path.
const mail = env.EMAIL_CONCURRENCY > 0 ? startEmailWorker(env.EMAIL_CONCURRENCY) : undefined;
function startEmailWorker(concurrency: number) {
  const mailDb = createDb(env.DATABASE_URL, { max: concurrency, applicationName: "ingest-worker-email", lockTimeoutMs: LOCK_TIMEOUT_MS, statementTimeoutMs: env.DB_STATEMENT_TIMEOUT_MS });
  const mailer = createMailer({ smtpUrl: env.SMTP_URL, from: env.MAIL_FROM, maxConnections: concurrency, nodeEnv: env.NODE_ENV }, log);
  const processor = createEmailProcessor({ db: mailDb.db, mailer, domain: domainOf(env.MAIL_FROM), log, metrics, queue: queues[EMAILS_QUEUE] });
  pools["worker-email"] = mailDb.pool;
  workers.push(laneWorker(EMAILS_QUEUE, processor, concurrency));
  const dispatcher = createWelcomeDispatcher({
    db: mailDb.db,
    queue: queues[EMAILS_QUEUE],
    retry: { attempts: env.EMAIL_ATTEMPTS, delayMs: env.EMAIL_RETRY_DELAY_MS },
    intervalMs: env.EMAIL_DISPATCH_INTERVAL_MS,
    afterMs: env.EMAIL_DISPATCH_AFTER_MS,
    log,
    metrics,
  });
  dispatcher.start();
  return { mailer, dispatcher, closeDb: mailDb.close };
}

let stopping = false;
let metricsServer: Server | undefined;
if (env.WORKER_METRICS_PORT) {
  const health = createWorkerHealth({ isStopping: () => stopping, lastContact: () => watchdog.lastContact(), unhealthyAfterMs: env.WORKER_UNHEALTHY_AFTER_MS });
  serveWorkerMetrics(metrics, env.WORKER_METRICS_PORT, health).then(
    (server) => {
      metricsServer = server;
      log.info({ port: env.WORKER_METRICS_PORT }, "worker metrics on /metrics and /healthz");
    },
    // Probes and scrapes need this port: without it the worker does not run.
    (err: NodeJS.ErrnoException) => {
      console.error(listenFailure(err, env.WORKER_METRICS_PORT, "WORKER_METRICS_PORT"));
      void close("start-up failure").finally(() => process.exit(1));
    },
  );
}

void warnUnlessNoEviction(connection, (obj, msg) => log.warn(obj, msg));
log.info({ queues: QUEUE_NAMES, prefix: env.QUEUE_PREFIX, pid: process.pid, email: mail?.mailer.kind ?? "off" }, "worker started");

let closing: Promise<void> | undefined;
function close(signal: string): Promise<void> {
  closing ??= (async () => {
    log.info({ signal }, "shutting down: finishing active jobs");
    stopping = true;
    // The dispatch in flight finishes too (its add is bounded by a timeout).
    const graceful = Promise.allSettled([...workers.map((w) => w.close()), mail?.dispatcher.close()]);
    const deadline = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), env.SHUTDOWN_TIMEOUT_MS).unref());
    if ((await Promise.race([graceful, deadline])) === "timeout") {
      // Jobs still running are left to another worker: their locks lapse and they are retried.
      log.warn({ timeoutMs: env.SHUTDOWN_TIMEOUT_MS }, "active jobs did not finish in time; closing anyway");
      await Promise.allSettled(workers.map((w) => w.close(true)));
    }
    watchdog.stop();
    await relay.close();
    await analyzer.close();
    await closeQueues(queues);
    mail?.mailer.close();
    await mail?.closeDb().catch((err) => log.warn({ err }, "closing the email pool failed"));
    await catalog.close().catch((err) => log.warn({ err }, "last cache invalidations failed"));
    await cacheRedis.quit().catch(() => cacheRedis.disconnect());
    metricsServer?.close();
    await connection.quit().catch(() => connection.disconnect());
    await closeDb().catch((err) => log.warn({ err }, "closing the pool failed"));
    await flushTracing();
    log.info("worker stopped");
  })();
  return closing;
}

exitOnStopSignals(close, env.SHUTDOWN_TIMEOUT_MS, () =>
  log.warn({ graceMs: CLOSE_GRACE_MS }, "connections did not close in time; exiting anyway"),
);
