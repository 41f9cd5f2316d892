// The catalog reads the API serves: the in-process and Redis caches in front of PostgreSQL, built from the env.
import { throttled } from "@ingest/runtime";
import { catalogKeys, createCatalogInvalidator, createCatalogQueries, type Resource } from "@ingest/catalog";
import { createCacheConnection, type RedisClient, type RedisTarget } from "@ingest/redis";
import type { Db } from "@ingest/db";
import CircuitBreaker from "opossum";
import type { Env } from "../env.js";
import type { Logger } from "../logger.js";
import { listenForInvalidations } from "./invalidation-listener.js";
import { createLocalStore } from "./local-store.js";
import { createReadThrough, type Served } from "./read-through.js";
import { createRedisStore } from "./redis-store.js";

type CatalogCacheConfig = {
  redisUrl: string | RedisTarget;
  prefix: string;
  ttlS: number;
  staleS: number;
  /** How long Redis keeps an entry in all; past TTL + stale it serves only while PostgreSQL is down. */
  keepS: number;
  localTtlMs: number;
  localMaxMb: number;
};

export type CatalogReads = {
  read(r: Resource): Promise<Served>;
  /**
   * Makes every cached read of these products a miss, here at once and on every API
   * process (as a worker does after a commit). Never throws: without the cache Redis,
   * this process's copies go and its reads bypass the cache anyway.
   */
  invalidate(productIds: number[]): Promise<void>;
  /** Counters for tests and metrics: how reads were served, and statements sent to PostgreSQL. */
  stats(): Record<string, number>;
  close(): Promise<void>;
};

// A fill lock outlives any sane catalog query; if its holder dies, waiters give up
// after their own short wait anyway.
const LOCK_MS = 3_000;

// PostgreSQL behind a breaker too: when it is down or hanging, reads answer from the
// cache (STALE) or 503 at once instead of each waiting out a connection timeout. The
// timeout matches the pool's connection timeout: a busy pool is not a dead database.
const DB_BREAKER = { timeout: 5_000, errorThresholdPercentage: 50, volumeThreshold: 5, resetTimeout: 2_000, name: "catalog-db" };

/** watch: hands each cache connection to the process's watchdog (one that stops answering is reconnected). */
export function createCatalogReads(db: Db, config: CatalogCacheConfig, log: Logger, watch?: (client: RedisClient, name: string) => void): CatalogReads {
  const queries = createCatalogQueries(db);
  const redis = createCacheConnection(config.redisUrl, { connectionName: "ingest-api-cache" });
  const sub = createCacheConnection(config.redisUrl, { connectionName: "ingest-api-cache-sub", autoResubscribe: false });
  watch?.(redis, "cache");
  watch?.(sub, "cache-subscriber");
  const warn = throttled((err: Error) => log.warn({ err: err.message }, "cache redis unavailable: reads bypass it"));
  redis.on("error", warn);
  sub.on("error", () => undefined);

  const store = createRedisStore(redis, {
    prefix: config.prefix,
    keepMs: Math.max(config.keepS, config.ttlS + config.staleS) * 1_000,
    lockMs: LOCK_MS,
    onBreaker: (state) => log.warn({ breaker: "cache-redis", state }, "cache breaker changed state"),
  });
  const local = createLocalStore({
    ttlMs: config.localTtlMs,
    maxEntries: 10_000,
    maxBytes: config.localMaxMb * 1024 * 1024,
  });
  const dbBreaker = new CircuitBreaker((r: Resource) => queries.read(r), DB_BREAKER);
  dbBreaker.on("open", () => log.warn({ breaker: "catalog-db", state: "open" }, "catalog database failing: reads answer from the cache or 503"));
  dbBreaker.on("close", () => log.info({ breaker: "catalog-db", state: "close" }, "catalog database answering again"));
  const cache = createReadThrough({
    store,
    local,
    load: (r) => dbBreaker.fire(r),
    ttlMs: config.ttlS * 1_000,
    staleMs: config.staleS * 1_000,
    log,
  });
  listenForInvalidations(sub, catalogKeys(config.prefix).channel, {
    onMessage: (msg) => cache.evict(msg),
    onLive: (live) => {
      local.setLive(live);
      cache.evict({ all: true });
    },
    onBadMessage: (raw) => log.warn({ raw: raw.slice(0, 200) }, "ignored a malformed cache invalidation"),
  });

  const invalidator = createCatalogInvalidator({ redis, prefix: config.prefix });
  let closing: Promise<void> | undefined;
  return {
    read: (r) => cache.read(r),
    async invalidate(productIds) {
      cache.evict({ ids: productIds });
      await invalidator.products(productIds).catch((err: Error) => warn(err));
    },
    stats: () => ({ ...cache.stats, dbQueries: queries.count, localEntries: local.size }),
    close: () =>
      (closing ??= (async () => {
        await cache.idle();
        dbBreaker.shutdown();
        store.close();
        await Promise.all([redis, sub].map((c) => c.quit().catch(() => c.disconnect())));
      })()),
  };
}

export function catalogCacheConfig(env: Env): CatalogCacheConfig {
  return {
    redisUrl: { url: env.CACHE_REDIS_URL, clusterNodes: env.CACHE_REDIS_CLUSTER_NODES },
    prefix: env.CACHE_PREFIX,
    ttlS: env.CACHE_TTL_S,
    staleS: env.CACHE_STALE_S,
    keepS: env.CACHE_KEEP_S,
    localTtlMs: env.CACHE_LOCAL_TTL_MS,
    localMaxMb: env.CACHE_LOCAL_MAX_MB,
  };
}
