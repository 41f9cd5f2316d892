// A job whose edit waits for an earlier edit of its product leaves its id under that
// earlier edit's id (a mark in Redis), and whichever worker settles the earlier edit
// calls it: a job parked in the delayed set is brought to the head of its queue at once
// instead of sitting out its backoff; a job waiting in another worker process is told on
// the turns channel instead of finding out at its next look. A long backlog of one
// product's edits (a fault scrambled their order) then drains at the pace of the
// workers, not of their timers. Edits nobody waits for cost one GETDEL per chunk.
import type { Db } from "@ingest/db";
import { carrierJobId, orderKeyOf, queueOfJobId, type Queues } from "@ingest/jobs";
import type { RedisClient } from "@ingest/redis";
import type { Job } from "bullmq";
import { appliedSeqs, bringForward, predecessorSettled, type TurnSignal } from "./ordering.js";
import type { WriteEnvelope } from "./write.js";

type MarkDeps = { queues: Queues; orderWaitMaxMs: number };

/** The channel on which settled edits that a job in another process waits for are announced. */
export const turnsChannel = (prefix: string) => `${prefix}:turns`;

/** Where the job waiting for each of these writes is kept: beside the write's queue (one hash slot with it in a cluster). */
function successorKeys(queues: Queues, writeIds: string[]): { queue: keyof Queues; key: string; writeId: string }[] {
  return writeIds.flatMap((writeId) => {
    const queue = queueOfJobId(carrierJobId(writeId));
    return queue ? [{ queue, key: queues[queue].toKey(`next:${writeId}`), writeId }] : [];
  });
}

/** Sends `command key ...args` for each key, one pipeline per queue's connection; the answers by key. */
async function onEachKey(queues: Queues, keys: { queue: keyof Queues; key: string }[], command: string, args: (string | number)[] = []): Promise<Map<string, unknown>> {
  const answers = new Map<string, unknown>();
  for (const [queue, group] of groupBy(keys, (k) => k.queue)) {
    const pipeline = (await queues[queue].backend.client).pipeline();
    for (const { key } of group) pipeline.runCommand(command, [key, ...args]);
    const replies = (await pipeline.exec()) ?? [];
    group.forEach(({ key }, k) => answers.set(key, replies[k]?.[1]));
  }
  return answers;
}

/**
 * Leaves the job's id under each predecessor these writes wait for (for as long as any
 * edit waits for a predecessor at all). Best effort: unmarked, the job finds out by looking.
 */
export async function markAwaited(deps: MarkDeps, jobId: string, waiting: WriteEnvelope[]): Promise<void> {
  const keys = successorKeys(deps.queues, waiting.flatMap((w) => (w.prevJobId ? [w.prevJobId] : [])));
  try {
    await onEachKey(deps.queues, keys, "set", [jobId, "PX", deps.orderWaitMaxMs]);
  } catch {
    // Redis did not answer: the job looks again after its pause, or comes back by its timer.
  }
}

/**
 * Marks a job just parked (delayed) as waiting for its writes' predecessors. One settled
 * after the job was delayed brings it back itself; one settled before that found no mark,
 * and shows here: then the job is brought back now.
 */
export async function awaitPredecessors(deps: MarkDeps & { db: Db }, job: Job, waiting: WriteEnvelope[]): Promise<void> {
  await markAwaited(deps, job.id!, waiting);
  try {
    const applied = await appliedSeqs(deps.db, waiting.map((w) => orderKeyOf(w)!).filter(Number.isInteger));
    if (waiting.some((w) => predecessorSettled(w, applied.get(orderKeyOf(w)!)))) await bringForward(job, "delayed");
  } catch {
    // PostgreSQL did not answer: the job comes back by its timer.
  }
}

/**
 * Calls the jobs waiting for these writes, now settled (applied, skipped or failed for
 * good): a parked one is brought back, one running in a worker (waiting there) is told
 * on the turns channel. Best effort: a job not called finds out by its timer.
 */
export async function wakeSuccessors(queues: Queues, settled: WriteEnvelope[]): Promise<void> {
  const keys = successorKeys(queues, settled.flatMap((w) => (orderKeyOf(w) !== undefined ? [w.id] : [])));
  if (!keys.length) return;
  try {
    const answers = await onEachKey(queues, keys, "getdel");
    const waiters = keys.flatMap(({ key, writeId }) => {
      const jobId = answers.get(key);
      return typeof jobId === "string" ? [{ jobId, writeId }] : [];
    });
    const running: string[] = [];
    await Promise.all(
      waiters.map(async ({ jobId, writeId }) => {
        const queue = queueOfJobId(jobId);
        const job = queue && (await queues[queue].getJob(jobId));
        if (!job) return;
        const state = await job.getState();
        if (state === "active") running.push(writeId);
        else await bringForward(job, state);
      }),
    );
    const [any] = Object.values(queues);
    if (running.length && any) await (await any.backend.client).runCommand("publish", [turnsChannel(any.opts.prefix!), JSON.stringify(running)]);
  } catch {
    // Redis did not answer: the waiting jobs find out by their timers.
  }
}

/**
 * Hears the settled edits other processes announce on a connection of its own (a
 * subscriber can do nothing else), and wakes this process's jobs that wait for them.
 * ioredis subscribes again after a reconnect; while it cannot, waits fall back to looking.
 */
export function listenForTurns(subscriber: RedisClient, prefix: string, turns: TurnSignal, onError: (err: Error) => void): void {
  subscriber.on("message", (_channel: string, message: string) => {
    try {
      const ids = JSON.parse(message) as unknown;
      if (Array.isArray(ids)) turns.settled(ids.filter((id): id is string => typeof id === "string"));
    } catch {
      // Not ours to read.
    }
  });
  subscriber.subscribe(turnsChannel(prefix)).catch(onError);
}

function groupBy<T, K>(items: T[], keyOf: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>();
  for (const item of items) groups.set(keyOf(item), [...(groups.get(keyOf(item)) ?? []), item]);
  return groups;
}
