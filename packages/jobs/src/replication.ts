// Waits until Redis replicas acknowledged the accepted writes (Redis WAIT).
import { Cluster } from "ioredis";
import type { RedisClient } from "@ingest/redis";

/** Fewer replicas than asked acknowledged the writes in time: the 202 would promise more than Redis kept. */
export class NotReplicatedError extends Error {
  constructor(
    readonly acknowledged: number,
    readonly wanted: number,
  ) {
    super(`writes reached ${acknowledged} of ${wanted} replica(s) in time`);
  }
}

export type ReplicaWait = { replicas: number; timeoutMs: number };

/**
 * With replicas > 0: a function that waits (Redis WAIT) until every write sent so far
 * on the queue connection reached that many replicas, and throws NotReplicatedError if
 * they did not within timeoutMs. WAIT covers what its own connection wrote, so it goes
 * where the writes went: on a cluster, in a pipeline led by a key of the queues' slot,
 * which the client sends to the master owning that slot over the connection the adds
 * used. Without it, a failover (or a hung master coming back as a replica) can drop
 * writes that were already answered 202.
 */
export function createReplicaWait(redis: RedisClient, slotKey: string, { replicas, timeoutMs }: ReplicaWait): (() => Promise<void>) | undefined {
  if (replicas <= 0) return undefined;
  return async () => {
    let acknowledged: unknown;
    if (redis instanceof Cluster) {
      const results = await redis.pipeline().exists(slotKey).call("WAIT", replicas, timeoutMs).exec();
      const [err, value] = results?.[1] ?? [new Error("no reply to WAIT"), undefined];
      if (err) throw err;
      acknowledged = value;
    } else {
      acknowledged = await redis.call("WAIT", replicas, timeoutMs);
    }
    if (typeof acknowledged !== "number" || acknowledged < replicas) throw new NotReplicatedError(Number(acknowledged) || 0, replicas);
  };
}
