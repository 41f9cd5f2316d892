// A job that parks because an edit it carries waits for an earlier edit of its product
// leaves its id under that earlier edit's id; whichever worker settles the earlier edit
// brings the parked job back at once, instead of the job sitting out its backoff. A long
// backlog of one product's edits (a fault scrambled their order) then drains at the pace
// of the workers, not of the timers: each edit, once settled, calls the next.
import type { Db } from "@ingest/db";
import { carrierJobId, orderKeyOf, queueOfJobId, type Queues } from "@ingest/jobs";
import { appliedSeqs, bringForward } from "./ordering.js";
import type { Job } from "bullmq";
import type { WriteEnvelope } from "./write.js";

/** Where the job waiting for a write is kept: beside the write's queue (one hash slot with it in a cluster). */
function successorKey(queues: Queues, writeId: string): { queue: keyof Queues; key: string } | undefined {
  const queue = queueOfJobId(carrierJobId(writeId));
  return queue ? { queue, key: queues[queue].toKey(`next:${writeId}`) } : undefined;
}

/**
 * Leaves a job's id, once it is parked (delayed), under each predecessor its writes wait
 * for, for as long as any edit waits for a predecessor at all. A predecessor settled
 * before its mark was set found none to wake: then the job is brought back here.
 */
export async function awaitPredecessors(deps: { db: Db; queues: Queues; orderWaitMaxMs: number }, job: Job, waiting: WriteEnvelope[]): Promise<void> {
  const marks = waiting.flatMap((w) => {
    const at = w.prevJobId ? successorKey(deps.queues, w.prevJobId) : undefined;
    return at ? [at] : [];
  });
  try {
    for (const [queue, keys] of groupBy(marks, (m) => m.queue)) {
      const pipeline = (await deps.queues[queue].backend.client).pipeline();
      for (const { key } of keys) pipeline.runCommand("set", [key, job.id!, "PX", deps.orderWaitMaxMs]);
      await pipeline.exec();
    }
    // The job is delayed before its marks are set, so a predecessor settled after that
    // brings it back itself; one settled before shows here.
    const applied = await appliedSeqs(deps.db, waiting.map((w) => orderKeyOf(w)!).filter(Number.isInteger));
    const turnCame = waiting.some((w) => {
      const seq = applied.get(orderKeyOf(w)!);
      return seq !== undefined && w.prevSeq != null && seq >= w.prevSeq;
    });
    if (turnCame) await bringForward(job, "delayed");
  } catch {
    // Redis or PostgreSQL did not answer: the job comes back by its timer.
  }
}

/**
 * Brings back the jobs parked waiting for these writes, now settled (applied, skipped or
 * failed for good). Best effort: a job not brought back comes back when its backoff ends.
 */
export async function wakeSuccessors(queues: Queues, settled: WriteEnvelope[]): Promise<void> {
  const marks = settled.flatMap((w) => {
    const at = orderKeyOf(w) !== undefined ? successorKey(queues, w.id) : undefined;
    return at ? [at] : [];
  });
  if (!marks.length) return;
  try {
    const waiters: string[] = [];
    for (const [queue, keys] of groupBy(marks, (m) => m.queue)) {
      const pipeline = (await queues[queue].backend.client).pipeline();
      for (const { key } of keys) pipeline.runCommand("getdel", [key]);
      for (const [, id] of (await pipeline.exec()) ?? []) if (typeof id === "string") waiters.push(id);
    }
    await Promise.all(
      waiters.map(async (id) => {
        const queue = queueOfJobId(id);
        const job = queue && (await queues[queue].getJob(id));
        if (job) await bringForward(job, await job.getState());
      }),
    );
  } catch {
    // Redis did not answer: the parked jobs come back by their timers.
  }
}

function groupBy<T, K>(items: T[], keyOf: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>();
  for (const item of items) groups.set(keyOf(item), [...(groups.get(keyOf(item)) ?? []), item]);
  return groups;
}
