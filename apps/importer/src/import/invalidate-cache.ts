// Drops every cached catalog read after an import; a cache Redis that is down does not fail it.
import { createCatalogInvalidator } from "@ingest/catalog";
import { createCacheConnection, type RedisClient, type RedisTarget } from "@ingest/redis";

export type CacheOutcome = { status: "invalidated" | "failed" | "off"; detail?: string };

const READY_TIMEOUT_MS = 3_000;
const COMMAND_TIMEOUT_MS = 5_000;

/** Ready, or the first connection error (a refused connection needs no retry here), or a timeout. */
function ready(redis: RedisClient): Promise<void> {
  if (redis.status === "ready") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`cache Redis not ready after ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    const onReady = () => done();
    const onError = (err: Error) => done(err);
    const done = (err?: Error) => {
      clearTimeout(timer);
      redis.off("ready", onReady);
      redis.off("error", onError);
      if (err) reject(err);
      else resolve();
    };
    redis.on("ready", onReady);
    redis.on("error", onError);
  });
}

/**
 * Makes every cached catalog read a miss after an import. A cache Redis that is down
 * does not fail the import: the outcome says so and the caller warns.
 */
export async function invalidateCatalogCache(url: string | RedisTarget, prefix: string): Promise<CacheOutcome> {
  const redis = createCacheConnection(url, { connectionName: "ingest-import", commandTimeoutMs: COMMAND_TIMEOUT_MS });
  redis.on("error", () => {});
  try {
    await ready(redis);
    await createCatalogInvalidator({ redis, prefix }).all();
    return { status: "invalidated", detail: `prefix ${prefix}` };
  } catch (err) {
    return { status: "failed", detail: (err as Error).message };
  } finally {
    redis.disconnect();
  }
}
