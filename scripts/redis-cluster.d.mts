// Types for redis-cluster.mjs, which stays plain JavaScript so the bench (plain Node) can use it.
import type { Redis } from "ioredis";

export interface RedisCluster {
  /** Every node's port, masters and replicas (which is which is the cluster's choice). */
  ports: number[];
  nodes: { host: string; port: number }[];
  /** "127.0.0.1:p1,127.0.0.1:p2,…": the value for REDIS_CLUSTER_NODES. */
  nodesEnv: string;
  /** The master serving a key's slot, as host:port. */
  masterOf(key: string): Promise<string | undefined>;
  /** Sends a signal to one node's server (SIGSTOP freezes it as a hung server, SIGCONT resumes it). */
  signal(port: number, signal: NodeJS.Signals): void;
  /** Kills every node and removes their folder; safe to call more than once. */
  stop(): Promise<void>;
}

export function clusterBinariesFound(): boolean;

/** One command on one node over a short-lived connection. */
export function nodeCommand<T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T>;

export function startRedisCluster(options?: { masters?: number; nodeTimeoutMs?: number }): Promise<RedisCluster>;
