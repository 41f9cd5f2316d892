// @ingest/redis: the Redis connections of the API, the worker and the cache, and the watchdog over them.
export {
  createCacheConnection,
  createProducerConnection,
  createWorkerConnection,
  waitForReady,
  warnUnlessNoEviction,
  type RedisClient,
  type RedisTarget,
} from "./connection.js";
export { createRedisWatchdog, type RedisWatchdog } from "./watchdog.js";
