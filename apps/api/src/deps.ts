import { createDb } from "@ingest/db";
import {
  closeQueues,
  createProducerConnection,
  createQueues,
  Producer,
  waitForReady,
  warnUnlessNoEviction,
} from "@ingest/jobs";
import { sql } from "drizzle-orm";
import type { AppDeps } from "./app.js";
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
  const redis = createProducerConnection(env.REDIS_URL, { connectionName: "ingest-api" });
  redis.on("error", throttled((err: Error) => log.warn({ err: err.message }, "queue redis unavailable")));
  redis.on("ready", () => {
    log.info("queue redis connected");
    void warnUnlessNoEviction(redis, (obj, msg) => log.warn(obj, msg));
  });
  const queues = createQueues(redis, env.QUEUE_PREFIX, throttled((err: Error, queue) => log.warn({ err: err.message, queue }, "queue error")));
  const { db, close: closeDb } = createDb(env.DATABASE_URL, { max: env.DB_POOL_SIZE, applicationName: "ingest-api" });
  const redisReady = () => redis.status === "ready";
  const jobs = createJobStatusReader(queues, db, redisReady);
  const producer = new Producer({ redis, queues, prefix: env.QUEUE_PREFIX, jobExists: jobs.exists });
  let draining = false;

  const deps: AppDeps = {
    producer,
    jobs,
    log,
    bodyLimitBytes: env.BODY_LIMIT_BYTES,
    health: {
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
      await closeQueues(queues);
      await redis.quit().catch(() => redis.disconnect());
      await closeDb().catch((err) => log.warn({ err }, "closing the pool failed"));
    })());

  return { deps, ready: (timeoutMs) => waitForReady(redis, timeoutMs), setDraining: () => void (draining = true), close };
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
