import { Redis, type RedisOptions } from "ioredis";

type Warn = (obj: object, msg: string) => void;

/**
 * The API's connection: commands fail at once while Redis is away (no offline queue,
 * one try, short timeouts) so a write answers 503 in milliseconds instead of hanging;
 * reconnection keeps going in the background.
 */
export function createProducerConnection(url: string, extra: RedisOptions = {}): Redis {
  return new Redis(url, {
    // Commands issued in the same event-loop turn (the adds of concurrent requests)
    // leave in one write and share a round trip; each keeps its own reply and error.
    enableAutoPipelining: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: 3_000,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
    lazyConnect: false,
    ...extra,
  });
}

/** The worker's connection: it waits for Redis rather than failing (BullMQ requires this). */
export function createWorkerConnection(url: string, extra: RedisOptions = {}): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: null,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    ...extra,
  });
}

/** Resolves once the connection is ready, or rejects after the timeout. */
export function waitForReady(redis: Redis, timeoutMs = 5_000): Promise<void> {
  if (redis.status === "ready") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis not ready after ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off("ready", onReady);
    };
    redis.on("ready", onReady);
  });
}

/** Queues need noeviction: an evicting Redis silently drops accepted jobs. */
export async function warnUnlessNoEviction(redis: Redis, warn: Warn): Promise<void> {
  try {
    const reply = (await redis.config("GET", "maxmemory-policy")) as string[];
    const policy = reply[1];
    if (policy && policy !== "noeviction") {
      warn(
        { policy },
        "queue Redis has maxmemory-policy other than noeviction: accepted jobs can be evicted and lost; set maxmemory-policy noeviction",
      );
    }
  } catch {
    // Managed Redis often forbids CONFIG; nothing to check then.
  }
}
