// The worker built from its configuration (createWorkerRuntime): main.ts runs it as a process, tests in theirs.
import { createCatalogInvalidator } from "@ingest/catalog";
import { throttled, withTimeout } from "@ingest/runtime";
import { createDb, registerPoolMetrics } from "@ingest/db";
import {
  closeQueues,
  createQueues,
  EMAILS_QUEUE,
  MAINTENANCE_QUEUE,
  QUEUE_NAMES,
  upsertMaintenanceScheduler,
  usePayloadVersion,
  type QueueName,
} from "@ingest/jobs";
import { createCacheConnection, createRedisWatchdog, createWorkerConnection, warnUnlessNoEviction, type RedisClient } from "@ingest/redis";
import { flushTracing } from "@ingest/telemetry";
import { Worker, type Queue } from "bullmq";
import type { Server } from "node:http";
import type { Pool } from "pg";
import { createCommitInvalidation } from "./catalog-invalidation.js";
import { createWelcomeDispatcher } from "./email/dispatch.js";
import { createMailer } from "./email/mailer.js";
import { createWelcomeRelay } from "./email/relay.js";
import type { Env } from "./env.js";
import { createWorkerHealth, type HealthAnswer } from "./health.js";
import { createStallMonitor, type LaneProbe, type StallMonitor } from "./lane-stall.js";
import { workerLanes, type Lane } from "./lanes.js";
import type { Logger } from "./logger.js";
import { createWorkerMetrics, serveWorkerMetrics, type WorkerMetrics } from "./metrics.js";
import { createTurnSignal } from "./ordering.js";
import { listenForTurns } from "./successors.js";
import { createAnalyzer } from "./statistics.js";

// No statement of the worker waits longer than this for a lock: one held by something
// stuck fails it, and its job retries.
const LOCK_TIMEOUT_MS = 10_000;

type WorkerRuntime = {
  /** A Worker per lane this process runs, idle until start(). */
  workers: Worker[];
  metrics: WorkerMetrics;
  /** What /healthz answers now. */
  health: () => HealthAnswer;
  /**
   * Takes jobs and starts the background work. Resolves once /metrics and /healthz listen
   * (when WORKER_METRICS_PORT is set); rejects when that port cannot be had.
   */
  start: () => Promise<void>;
  /** Stops taking jobs, lets active ones finish for SHUTDOWN_TIMEOUT_MS at most, then releases everything in order; once. */
  close: (reason?: string) => Promise<void>;
};

/** Connections, the cache invalidation, a Worker per lane of lanes.ts, the email dispatch, /metrics and /healthz, one close(). */
export function createWorkerRuntime(env: Env, { log }: { log: Logger }): WorkerRuntime {
  // Process-wide: the format of every job this process adds, and the newest it reads.
  usePayloadVersion(env.PAYLOAD_VERSION);
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
  const pools: Record<string, Pool> = { worker: pool };
  registerPoolMetrics(metrics.registry, pools);
  // Fresh statistics for the tables the writes fill, so no cached plan scans them whole.
  const analyzer = createAnalyzer(db, log);

  // Its own connection: a dead cache Redis fails fast here and never blocks the queue's.
  // A second per command: a busy machine's cache still answers within it, so the next
  // read after a job completes misses (a dead one is skipped for 5 s after three tries).
  const cacheRedis = createCacheConnection({ url: env.CACHE_REDIS_URL, clusterNodes: env.CACHE_REDIS_CLUSTER_NODES }, { connectionName: "ingest-worker-cache", commandTimeoutMs: 1_000 });
  cacheRedis.on("error", throttled((err: Error) => log.warn({ err: err.message }, "cache redis unavailable: invalidations wait")));
  watchdog.watch(cacheRedis, { name: "cache" });
  const catalog = createCommitInvalidation(createCatalogInvalidator({ redis: cacheRedis, prefix: env.CACHE_PREFIX }), cacheRedis, log);

  const relay = createWelcomeRelay({ queue: queues[EMAILS_QUEUE], retry: emailRetryOf(env), log, waitMs: env.EMAIL_RELAY_WAIT_MS });
  const mail = env.EMAIL_CONCURRENCY > 0 ? openMail(env, { queue: queues[EMAILS_QUEUE], log, metrics }) : undefined;
  if (mail) pools["worker-email"] = mail.pool;

  // Wakes this process's edits waiting for an earlier edit of their product when it is
  // settled, here or in another process (announced on a subscriber connection, watched
  // for a dead peer like the others; a PING is allowed while subscribed).
  const turns = createTurnSignal();
  const subscriber = createWorkerConnection({ url: env.REDIS_URL, clusterNodes: env.REDIS_CLUSTER_NODES });
  subscriber.on("error", throttled((err: Error) => log.warn({ err: err.message }, "turns subscriber: redis unavailable")));
  watchdog.watch(subscriber, { name: "turns" });
  listenForTurns(subscriber, env.QUEUE_PREFIX, turns, (err) => log.warn({ err: err.message }, "turns subscriber: subscribe failed; waits look again instead"));
  const lanes = workerLanes(env, { db, queues, turns, catalog, relay, mail, log, metrics });

  // What this process started of each lane, for the stall monitor.
  const probes: LaneProbe[] = [];
  let startedAt = Date.now();

  /** A lane's Worker, idle until start() runs it. */
  const laneWorker = (queue: QueueName, lane: Lane): Worker => {
    const processor = lane.processor();
    // Start times of the jobs in flight, oldest first (Set keeps insertion order).
    const running = new Set<{ at: number }>();
    let lastStartAt = 0;
    const counted: typeof processor = async (job, token) => {
      const entry = { at: (lastStartAt = Date.now()) };
      running.add(entry);
      try {
        return await processor(job, token);
      } finally {
        running.delete(entry);
      }
    };
    const worker = new Worker(queue, counted, { ...lane.options, connection, prefix: env.QUEUE_PREFIX, concurrency: lane.concurrency, autorun: false });
    probes.push({
      name: queue,
      concurrency: lane.concurrency,
      inFlight: () => running.size,
      lastStartAt: () => Math.max(lastStartAt, startedAt),
      oldestStartAt: () => running.values().next().value?.at,
      maxJobMs: lane.maxJobMs,
      idle: () => !worker.isRunning() || worker.isPaused() || closing !== undefined,
      waiting: () => withTimeout(waitingJobs(queues[queue], connection, Math.min(OVERDUE_MS, env.WORKER_STALL_AFTER_MS)), STALL_PROBE_TIMEOUT_MS, "waiting count"),
    });
    worker.on("error", throttled((err: Error) => log.error({ err, queue }, "worker error")));
    if (lane.logFinalFailure) {
      worker.on("failed", (job, err) => {
        if (job && (err.name === "UnrecoverableError" || job.attemptsMade >= (job.opts.attempts ?? 1))) log.error({ jobId: job.id, err }, "job failed for good");
      });
    }
    return worker;
  };
  const workers = (Object.entries(lanes) as [QueueName, Lane][]).filter(([, lane]) => lane.concurrency > 0).map(([queue, lane]) => laneWorker(queue, lane));

  let stopping = false;
  let monitor: StallMonitor | undefined;
  const health = createWorkerHealth({
    isStopping: () => stopping,
    lastContact: () => watchdog.lastContact(),
    unhealthyAfterMs: env.WORKER_UNHEALTHY_AFTER_MS,
    stalledLanes: () => monitor?.stalled() ?? [],
  });
  let serving: Promise<Server> | undefined;

  let starting: Promise<void> | undefined;
  const start = () =>
    (starting ??= (async () => {
      if (closing) return;
      analyzer.start();
      // As BullMQ's autorun does: a main loop that fails says so on the worker's error listener.
      startedAt = Date.now();
      for (const worker of workers) worker.run().catch((err: Error) => worker.emit("error", err));
      monitor = createStallMonitor({
        lanes: probes,
        stallAfterMs: env.WORKER_STALL_AFTER_MS,
        onStall: (stall) => log.error(stall, "lane stalled: jobs wait and this worker takes none; /healthz answers 503 so that it is restarted"),
        onRecover: (lane) => log.warn({ lane }, "lane takes jobs again"),
      });
      upsertMaintenanceScheduler(queues[MAINTENANCE_QUEUE], env.MAINTENANCE_EVERY_MS || undefined).catch((err) => log.error({ err }, "could not schedule maintenance"));
      mail?.dispatcher.start();
      if (env.WORKER_METRICS_PORT) serving = serveWorkerMetrics(metrics, env.WORKER_METRICS_PORT, health);
      void warnUnlessNoEviction(connection, (obj, msg) => log.warn(obj, msg));
      log.info({ queues: QUEUE_NAMES, prefix: env.QUEUE_PREFIX, pid: process.pid, email: mail?.mailer.kind ?? "off" }, "worker started");
      if (serving) {
        await serving;
        log.info({ port: env.WORKER_METRICS_PORT }, "worker metrics on /metrics and /healthz");
      }
    })());

  let closing: Promise<void> | undefined;
  const close = (reason = "close") =>
    (closing ??= (async () => {
      log.info({ signal: reason }, "shutting down: finishing active jobs");
      stopping = true;
      monitor?.stop();
      // The dispatch in flight finishes too (its add is bounded by a timeout).
      const graceful = Promise.allSettled([...workers.map((w) => w.close()), mail?.dispatcher.close()]);
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), env.SHUTDOWN_TIMEOUT_MS).unref()));
      const finished = await Promise.race([graceful, deadline]);
      clearTimeout(timer);
      if (finished === "timeout") {
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
      (await serving?.catch(() => undefined))?.close();
      subscriber.disconnect();
      await connection.quit().catch(() => connection.disconnect());
      await closeDb().catch((err) => log.warn({ err }, "closing the pool failed"));
      await flushTracing();
      log.info("worker stopped");
    })());

  return { workers, metrics, health, start, close };
}

// A waiting count not known within this is no verdict (Redis is slow or away: the watchdog's part).
const STALL_PROBE_TIMEOUT_MS = 5_000;

// A delayed job this far past its time should have been promoted by a polling worker.
const OVERDUE_MS = 10_000;

/**
 * Jobs ready to be taken from the queue, counting delayed ones well past their time (a
 * parked write): any worker that polls promotes those. None while the queue is paused.
 */
async function waitingJobs(queue: Queue, client: RedisClient, overdueMs: number): Promise<number> {
  if (await queue.isPaused()) return 0;
  const [ready, overdue] = await Promise.all([
    queue.getJobCountByTypes("wait", "prioritized"),
    // BullMQ scores a delayed job by its due time × 0x1000 (getDelayedScore.lua).
    client.zcount(queue.toKey("delayed"), 0, (Date.now() - overdueMs) * 0x1000),
  ]);
  return ready + overdue;
}

const emailRetryOf = (env: Env) => ({ attempts: env.EMAIL_ATTEMPTS, delayMs: env.EMAIL_RETRY_DELAY_MS });

/**
 * Emails have a pool of their own: a send holds its connection (the email_sends row
 * lock) while the SMTP server answers, and a slow server must not starve the writes.
 * The lane also dispatches: it moves the welcome emails registrations left pending in
 * email_sends to the emails queue, off the registrations' path.
 */
function openMail(env: Env, deps: { queue: Queue; log: Logger; metrics: WorkerMetrics }) {
  const concurrency = env.EMAIL_CONCURRENCY;
  const { db, pool, close: closeDb } = createDb(env.DATABASE_URL, { max: concurrency, applicationName: "ingest-worker-email", lockTimeoutMs: LOCK_TIMEOUT_MS, statementTimeoutMs: env.DB_STATEMENT_TIMEOUT_MS });
  const mailer = createMailer({ smtpUrl: env.SMTP_URL, from: env.MAIL_FROM, maxConnections: concurrency, nodeEnv: env.NODE_ENV }, deps.log);
  const dispatcher = createWelcomeDispatcher({
    db,
    queue: deps.queue,
    retry: emailRetryOf(env),
    intervalMs: env.EMAIL_DISPATCH_INTERVAL_MS,
    afterMs: env.EMAIL_DISPATCH_AFTER_MS,
    log: deps.log,
    metrics: deps.metrics,
  });
  return { db, pool, mailer, dispatcher, closeDb };
}
