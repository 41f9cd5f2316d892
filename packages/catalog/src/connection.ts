// The cache's Redis connection: a server or a cluster that never makes a caller wait.
import { redisAuthOf, type HostPort } from "@ingest/config";
import { Cluster, Redis, type RedisOptions } from "ioredis";

/** The cache's Redis: one server, or a Redis Cluster over which the cache keys spread. */
export type CacheRedis = Redis | Cluster;

/** A server by URL or, with clusterNodes, a cluster from those seeds (the URL then gives only credentials and TLS). */
export type CacheTarget = string | { url: string; clusterNodes?: readonly HostPort[] | undefined };

// Idle connections send a TCP probe now and then, so a NAT or firewall keeps their entry.
const KEEP_ALIVE_MS = 30_000;

type CacheOptions = RedisOptions & { connectionName: string; commandTimeoutMs?: number };

/**
 * A cache connection never makes a caller wait for Redis: no offline queue, no
 * retries of a command, short timeouts. A dead or slow cache costs a few
 * milliseconds, then the caller does without it. Reconnection goes on in the background.
 */
export function createCacheConnection(url: string, opts: CacheOptions): Redis;
export function createCacheConnection(target: CacheTarget, opts: CacheOptions): CacheRedis;
export function createCacheConnection(target: CacheTarget, { commandTimeoutMs = 250, ...opts }: CacheOptions): CacheRedis {
  const url = typeof target === "string" ? target : target.url;
  const nodes = typeof target === "string" ? undefined : target.clusterNodes;
  if (nodes?.length) {
    return new Cluster([...nodes], {
      enableOfflineQueue: false,
      clusterRetryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
      slotsRefreshTimeout: 1_000,
      redisOptions: { ...redisAuthOf(url), maxRetriesPerRequest: 0, connectTimeout: 1_000, commandTimeout: commandTimeoutMs, keepAlive: KEEP_ALIVE_MS, ...opts },
    });
  }
  return new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 1_000,
    commandTimeout: commandTimeoutMs,
    keepAlive: KEEP_ALIVE_MS,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
    ...opts,
  });
}
