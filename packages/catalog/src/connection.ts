import { Redis, type RedisOptions } from "ioredis";

/**
 * A cache connection never makes a caller wait for Redis: no offline queue, no
 * retries of a command, short timeouts. A dead or slow cache costs a few
 * milliseconds, then the caller does without it. Reconnection goes on in the background.
 */
export function createCacheConnection(
  url: string,
  { commandTimeoutMs = 250, ...opts }: RedisOptions & { connectionName: string; commandTimeoutMs?: number },
): Redis {
  return new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 1_000,
    commandTimeout: commandTimeoutMs,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
    ...opts,
  });
}
