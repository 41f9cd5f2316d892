// Redis connections: the API's fails fast, the worker's waits for Redis, the cache's never makes a caller wait.
import { redisAuthOf, type HostPort } from "@ingest/config";
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";

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

/** How one kind of connection behaves, on a single server and on a cluster alike. */
type ConnectionKind = {
  /** Options of the client a caller holds: the server connection, or the Cluster over the nodes. */
  client: Pick<RedisOptions, "enableOfflineQueue" | "enableAutoPipelining">;
  /** Options of every server connection: retries per command, timeouts. */
  node: RedisOptions;
  retry: (attempt: number) => number;
  cluster?: Pick<ClusterOptions, "slotsRefreshTimeout">;
};

/** A server or a cluster, as the target says, configured alike: `extra` goes to every server connection. */
function connect(target: string | RedisTarget, { client, node, retry, cluster }: ConnectionKind, extra: RedisOptions): RedisClient {
  const nodes = clusterNodesOf(target);
  if (nodes) {
    return new Cluster([...nodes], {
      ...client,
      ...cluster,
      clusterRetryStrategy: retry,
      redisOptions: { ...redisAuthOf(urlOf(target)), ...node, keepAlive: KEEP_ALIVE_MS, ...extra },
    });
  }
  return new Redis(urlOf(target), { ...client, ...node, keepAlive: KEEP_ALIVE_MS, retryStrategy: retry, ...extra });
}

/**
 * The API's connection: commands fail at once while Redis is away (no offline queue,
 * one try, short timeouts) so a write answers 503 in milliseconds instead of hanging;
 * reconnection keeps going in the background.
 */
export function createProducerConnection(url: string, extra?: RedisOptions): Redis;
export function createProducerConnection(target: string | RedisTarget, extra?: RedisOptions): RedisClient;
export function createProducerConnection(target: string | RedisTarget, extra: RedisOptions = {}): RedisClient {
  return connect(
    target,
    {
      // Commands issued in the same event-loop turn (the adds of concurrent requests)
      // leave in one write and share a round trip; each keeps its own reply and error.
      // On a cluster, node connections always queue while they connect (ioredis forces
      // it); the cluster-level offline queue is what makes a write fail at once instead of waiting.
      client: { enableAutoPipelining: true, enableOfflineQueue: false },
      node: { maxRetriesPerRequest: 1, connectTimeout: 2_000, commandTimeout: 3_000 },
      retry: (attempt) => Math.min(attempt * 100, 1_000),
      cluster: { slotsRefreshTimeout: 2_000 },
    },
    extra,
  );
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
  return connect(
    target,
    { client: {}, node: { maxRetriesPerRequest: null, connectTimeout: 5_000 }, retry: (attempt) => Math.min(attempt * 200, 2_000) },
    extra,
  );
}

type CacheOptions = RedisOptions & { connectionName: string; commandTimeoutMs?: number };

/**
 * A cache connection never makes a caller wait for Redis: no offline queue, no
 * retries of a command, short timeouts. A dead or slow cache costs a few
 * milliseconds, then the caller does without it. Reconnection goes on in the background.
 */
export function createCacheConnection(url: string, opts: CacheOptions): Redis;
export function createCacheConnection(target: string | RedisTarget, opts: CacheOptions): RedisClient;
export function createCacheConnection(target: string | RedisTarget, { commandTimeoutMs = 250, ...opts }: CacheOptions): RedisClient {
  return connect(
    target,
    {
      client: { enableOfflineQueue: false },
      node: { maxRetriesPerRequest: 0, connectTimeout: 1_000, commandTimeout: commandTimeoutMs },
      retry: (attempt) => Math.min(attempt * 100, 1_000),
      cluster: { slotsRefreshTimeout: 1_000 },
    },
    opts,
  );
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
