// Redis connections for queues: the API's fails fast, the worker's waits for Redis.
import { redisAuthOf, type HostPort } from "@ingest/config";
import { Cluster, Redis, type RedisOptions } from "ioredis";

type Warn = (obj: object, msg: string) => void;

/** One Redis server or a Redis Cluster: every call site takes either. */
export type RedisClient = Redis | Cluster;

/**
 * A Redis server by URL or, with clusterNodes, a Redis Cluster found from those seed
 * nodes; the URL then only gives the credentials and TLS (rediss:) of every node.
 */
export type RedisTarget = { url: string; clusterNodes?: readonly HostPort[] | undefined };

/** The cluster's seed nodes, or undefined for a single server. */
function clusterNodesOf(target: string | RedisTarget): readonly HostPort[] | undefined {
  return typeof target === "string" || !target.clusterNodes?.length ? undefined : target.clusterNodes;
}

const urlOf = (target: string | RedisTarget) => (typeof target === "string" ? target : target.url);

// TCP keepalive on every connection: an idle connection still sends a probe now and then,
// so a NAT or firewall in the way keeps its entry, and the kernel ends a connection whose
// peer is gone (slowly: the watchdog, watchdog.ts, is what notices within seconds).
const KEEP_ALIVE_MS = 30_000;

/**
 * The API's connection: commands fail at once while Redis is away (no offline queue,
 * one try, short timeouts) so a write answers 503 in milliseconds instead of hanging;
 * reconnection keeps going in the background.
 */
export function createProducerConnection(url: string, extra?: RedisOptions): Redis;
export function createProducerConnection(target: string | RedisTarget, extra?: RedisOptions): RedisClient;
export function createProducerConnection(target: string | RedisTarget, extra: RedisOptions = {}): RedisClient {
  const nodes = clusterNodesOf(target);
  if (nodes) {
    // Node connections always queue while they connect (ioredis forces it); the
    // cluster-level offline queue is what makes a write fail at once instead of waiting.
    return new Cluster([...nodes], {
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      clusterRetryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
      slotsRefreshTimeout: 2_000,
      redisOptions: { ...redisAuthOf(urlOf(target)), maxRetriesPerRequest: 1, connectTimeout: 2_000, commandTimeout: 3_000, keepAlive: KEEP_ALIVE_MS, ...extra },
    });
  }
  return new Redis(urlOf(target), {
    // Commands issued in the same event-loop turn (the adds of concurrent requests)
    // leave in one write and share a round trip; each keeps its own reply and error.
    enableAutoPipelining: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: 3_000,
    keepAlive: KEEP_ALIVE_MS,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
    lazyConnect: false,
    ...extra,
  });
}

/**
 * The worker's connection: it waits for Redis rather than failing (BullMQ requires this).
 * No commandTimeout: BullMQ's blocking fetch runs on duplicates of this connection, which
 * inherit its options, and a timeout would cut every fetch that legitimately waits for a
 * job; a timed-out command is not withdrawn either, and the dead socket would stay. A
 * connection that stops answering is found and reconnected by the watchdog instead.
 */
export function createWorkerConnection(url: string, extra?: RedisOptions): Redis;
export function createWorkerConnection(target: string | RedisTarget, extra?: RedisOptions): RedisClient;
export function createWorkerConnection(target: string | RedisTarget, extra: RedisOptions = {}): RedisClient {
  const nodes = clusterNodesOf(target);
  if (nodes) {
    return new Cluster([...nodes], {
      clusterRetryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
      redisOptions: { ...redisAuthOf(urlOf(target)), maxRetriesPerRequest: null, connectTimeout: 5_000, keepAlive: KEEP_ALIVE_MS, ...extra },
    });
  }
  return new Redis(urlOf(target), {
    maxRetriesPerRequest: null,
    connectTimeout: 5_000,
    keepAlive: KEEP_ALIVE_MS,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    ...extra,
  });
}

/** Resolves once the connection is ready, or rejects after the timeout. */
export function waitForReady(redis: RedisClient, timeoutMs = 5_000): Promise<void> {
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
export async function warnUnlessNoEviction(redis: RedisClient, warn: Warn): Promise<void> {
  // CONFIG is per server: on a cluster every master is asked (a replica takes over a
  // master's policy only if it has the same one; CONFIG SET is per node too).
  let servers: Redis[] = [];
  if (redis instanceof Cluster) {
    try {
      await waitForReady(redis, 30_000);
    } catch {
      return;
    }
    servers = redis.nodes("master");
  } else servers = [redis];
  for (const server of servers) {
    try {
      const reply = (await server.config("GET", "maxmemory-policy")) as string[];
      const policy = reply[1];
      if (policy && policy !== "noeviction") {
        warn(
          { policy, ...(redis instanceof Cluster ? { node: `${server.options.host}:${server.options.port}` } : {}) },
          "queue Redis has maxmemory-policy other than noeviction: accepted jobs can be evicted and lost; set maxmemory-policy noeviction",
        );
      }
    } catch {
      // Managed Redis often forbids CONFIG; nothing to check then.
    }
  }
}
