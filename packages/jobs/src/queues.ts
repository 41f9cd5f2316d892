// The BullMQ queues, their default job options and the hash-tagged key prefix.
import type { RedisClient } from "@ingest/redis";
import { bullmqTelemetry } from "@ingest/telemetry";
import { Queue, type Job, type JobsOptions } from "bullmq";
import { QUEUE_NAMES, type QueueName } from "./definitions.js";
import { versioned } from "./version.js";

// The hash tag keeps every key of the write path (queues, idempotency records,
// sequences) in one Redis Cluster slot, so one Lua script may touch them together.
export const DEFAULT_PREFIX = "{ingest}";

/**
 * Whether every key under the prefix hashes to one Redis Cluster slot: a non-empty
 * {tag} (Redis hashes the first one). A cluster needs it, since BullMQ's scripts and
 * the producer's touch several keys at once.
 */
export function hasHashTag(prefix: string): boolean {
  return /^[^{]*\{[^}]+\}/.test(prefix);
}

const HOUR = 3_600;

export const DEFAULT_JOB_OPTIONS: JobsOptions = {
  // Transient failures (PostgreSQL restarting) retry for about 17 minutes in all.
  attempts: 10,
  backoff: { type: "exponential", delay: 1_000 },
  // Redis keeps a bounded number of finished jobs; the durable status is in PostgreSQL.
  removeOnComplete: { age: HOUR, count: 10_000 },
  removeOnFail: { age: 7 * 24 * HOUR, count: 100_000 },
};

export type Queues = Record<QueueName, Queue>;

/** A queue whose every added job carries the format version this process writes (version.ts). */
class VersionedQueue extends Queue {
  override add(name: string, data: unknown, opts?: JobsOptions): Promise<Job> {
    return super.add(name, versioned(data), opts);
  }

  override addBulk(jobs: { name: string; data: unknown; opts?: Parameters<Queue["addBulk"]>[0][number]["opts"] }[]): Promise<Job[]> {
    return super.addBulk(jobs.map((job) => ({ ...job, data: versioned(job.data) })));
  }
}

export function createQueues(
  connection: RedisClient,
  prefix: string,
  onError: (err: Error, queue: QueueName) => void,
): Queues {
  const entries = QUEUE_NAMES.map((name) => {
    const queue = new VersionedQueue(name, {
      connection,
      prefix,
      defaultJobOptions: DEFAULT_JOB_OPTIONS,
      streams: { events: { maxLen: 10_000 } },
      // BullMQ's own spans of add and addBulk, when tracing is on.
      ...bullmqTelemetry(),
    });
    queue.on("error", (err) => onError(err, name));
    return [name, queue] as const;
  });
  return Object.fromEntries(entries) as Queues;
}

export async function closeQueues(queues: Queues): Promise<void> {
  await Promise.allSettled(Object.values(queues).map((q) => q.close()));
}
