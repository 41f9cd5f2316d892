// Connects what the API needs (database, queues, caches, producer) and closes it in order.
import { throttled } from "@ingest/runtime";
import { createDb } from "@ingest/db";
import { closeQueues, createQueues, isJobName, JOBS, Producer, usePayloadVersion } from "@ingest/jobs";
import { createProducerConnection, createRedisWatchdog, waitForReady, warnUnlessNoEviction } from "@ingest/redis";
import { sql } from "drizzle-orm";
import cluster from "node:cluster";
import { randomBytes } from "node:crypto";
import type { BoardConfig } from "./admin/board.js";
import { createMetrics } from "./metrics.js";
import { createAuth } from "./middleware/auth.js";
import { createCors } from "./middleware/cors.js";
import { createQueueGuard, memoryOf } from "./middleware/queue-guard.js";
import { readiness } from "./routes/health.js";
import { createRateLimit } from "./middleware/rate-limit.js";
import { createShedder } from "./middleware/shed.js";
import type { AppDeps } from "./app.js";
import { catalogCacheConfig, createCatalogReads } from "./cache/catalog-reads.js";
import type { Env } from "./env.js";
import { createJobStatusReader } from "./job-status.js";
import type { Logger } from "./logger.js";

export type Runtime = {
  deps: AppDeps;
  /** Resolves once queue Redis is connected (writes answer 503 until then). */
  ready: (timeoutMs?: number) => Promise<void>;
  setDraining: () => void;
  close: () => Promise<void>;
};

/** Connects everything the API needs; close() releases it in order, once. */
export function createRuntime(env: Env, log: Logger): Runtime {
  // Process-wide: the format of every job this process adds.
  usePayloadVersion(env.PAYLOAD_VERSION);
  const redis = createProducerConnection({ url: env.REDIS_URL, clusterNodes: env.REDIS_CLUSTER_NODES }, { connectionName: "ingest-api" });
  redis.on("error", throttled((err: Error) => log.warn({ err: err.message }, "queue redis unavailable")));
  redis.on("ready", () => {
    log.info("queue redis connected");
    void warnUnlessNoEviction(redis, (obj, msg) => log.warn(obj, msg));
  });
  // A connection whose peer vanished without closing would otherwise answer 503 for good.
  // WAIT holds the connection up to its timeout, and a PING waits behind it.
  const watchdog = createRedisWatchdog({
    timeoutMs: env.REDIS_PING_TIMEOUT_MS + (env.REDIS_WAIT_REPLICAS > 0 ? env.REDIS_WAIT_TIMEOUT_MS : 0),
    onDrop: (name, why) => log.warn({ connection: name, why }, "redis connection not answering: reconnecting"),
  });
  watchdog.watch(redis, { name: "queue", critical: true });
  const queues = createQueues(redis, env.QUEUE_PREFIX, throttled((err: Error, queue) => log.warn({ err: err.message, queue }, "queue error")));
  const { db, pool, close: closeDb } = createDb(env.DATABASE_URL, { max: env.DB_POOL_SIZE, applicationName: "ingest-api", statementTimeoutMs: env.DB_STATEMENT_TIMEOUT_MS });
  const redisReady = () => redis.status === "ready";
  // A write done but its job not yet finished: its cache invalidation may not have run.
  const jobs = createJobStatusReader(queues, db, redisReady, async ({ name, result }) => {
    const productId = (result as { productId?: unknown } | null)?.productId;
    if (isJobName(name) && "invalidates" in JOBS[name] && typeof productId === "number") await catalog.invalidate([productId]);
  });
  const producer = new Producer({
    redis,
    queues,
    prefix: env.QUEUE_PREFIX,
    jobExists: jobs.exists,
    replicas: { replicas: env.REDIS_WAIT_REPLICAS, timeoutMs: env.REDIS_WAIT_TIMEOUT_MS },
    carriers: { lingerMs: env.CARRIER_WAIT_MS, minWrites: env.CARRIER_MIN_WRITES },
  });
  const catalog = createCatalogReads(db, catalogCacheConfig(env), log, (client, name) => watchdog.watch(client, { name }));
  let draining = false;

  // Each refers to the other only when called (a scrape, a shed request).
  const metrics = createMetrics(queues, {
    eventLoopDelay: () => shedder.delayMs(),
    clustered: cluster.isWorker,
    pool,
    ops: { redisMemory: () => memoryOf(redis), ready: async () => (await readiness(deps.health)).ready },
  });
  const shedder = createShedder({ lagMs: env.SHED_LAG_MS, onShed: () => metrics.shed.inc({ reason: "event_loop" }) });
  const queueGuard = createQueueGuard(queues, redis, {
    highWater: env.QUEUE_HIGH_WATER,
    memoryHighWaterPct: env.QUEUE_MEMORY_HIGH_WATER_PCT,
    onShed: (reason) => metrics.shed.inc({ reason }),
  });

  const deps: AppDeps = {
    producer,
    jobs,
    log,
    bodyLimitBytes: env.BODY_LIMIT_BYTES,
    bulk: { maxLines: env.BULK_MAX_LINES, maxBytes: env.BULK_MAX_BYTES },
    queues,
    metrics,
    shedder,
    queueGuard,
    auth: createAuth({ secret: env.JWT_SECRET, jwksUrl: env.JWKS_URL, issuer: env.JWT_ISSUER, audience: env.JWT_AUDIENCE }),
    rateLimit: createRateLimit(redis, {
      perMinute: env.RATE_LIMIT_PER_MIN,
      prefix: env.QUEUE_PREFIX,
      onLimited: () => metrics.rateLimited.inc(),
    }),
    board: boardConfig(env, log),
    trustProxy: env.TRUST_PROXY,
    catalog,
    cors: env.CORS_ORIGINS ? createCors(env.CORS_ORIGINS) : undefined,
    health: {
      instance: env.INSTANCE_ID,
      isDraining: () => draining,
      checks: {
        redis: async () => {
          if (!redisReady()) throw new Error("not connected");
          await redis.ping();
        },
        postgres: () => db.execute(sql`select 1`),
      },
    },
  };

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      watchdog.stop();
      shedder.stop();
      queueGuard.stop();
      await closeQueues(queues);
      await redis.quit().catch(() => redis.disconnect());
      await catalog.close().catch((err) => log.warn({ err }, "closing the catalog cache failed"));
      await closeDb().catch((err) => log.warn({ err }, "closing the pool failed"));
    })());

  return { deps, ready: (timeoutMs) => waitForReady(redis, timeoutMs), setDraining: () => void (draining = true), close };
}

/** Operators log in with ADMIN_USER/ADMIN_PASSWORD; development without them gets a one-off password. */
function boardConfig(env: Env, log: Logger): BoardConfig {
  const readOnly = env.ADMIN_READ_ONLY;
  if (env.ADMIN_USER && env.ADMIN_PASSWORD) return { user: env.ADMIN_USER, password: env.ADMIN_PASSWORD, readOnly };
  // Production never gets here (checkEnv refuses to start); tests and development do.
  const password = randomBytes(12).toString("base64url");
  if (env.NODE_ENV === "development") {
    log.warn({ user: "admin", password }, "ADMIN_USER/ADMIN_PASSWORD not set: Bull Board uses this one-off login");
  }
  return { user: "admin", password, readOnly };
}
