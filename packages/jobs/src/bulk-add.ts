import { createBatcher, settle, TimeoutError, withTimeout } from "@ingest/config";
import type { JobsOptions, Queue } from "bullmq";

/** opts: anything besides the id that differs from the queue's default job options. */
export type AddRequest = { name: string; data: unknown; jobId: string; opts?: JobsOptions };

/** A request as one entry of Queue.addBulk. */
export const toBulkJob = (r: AddRequest) => ({ name: r.name, data: r.data as never, opts: { ...r.opts, jobId: r.jobId } });

/**
 * Adds jobs to one queue, coalescing the adds of one event-loop turn into one addBulk:
 * one pipelined write to Redis for all the requests being answered at the same time.
 * A lone add goes at the end of the turn it was made in, so it waits for nothing.
 * When the bulk fails (one bad job fails it), each job is added on its own, so only
 * the bad one fails: adding a job whose id already landed is a no-op. A bulk that
 * timed out is not repeated; its jobs may still land, and their requests fail.
 * afterAdd runs once after the jobs landed; if it throws, their requests fail with it.
 */
export function createBulkAdder(
  queue: Queue,
  { timeoutMs, maxSize = 500, afterAdd }: { timeoutMs: number; maxSize?: number; afterAdd?: () => Promise<void> },
) {
  const addOne = (r: AddRequest) =>
    settle(withTimeout(queue.add(r.name, r.data as never, { ...r.opts, jobId: r.jobId }), timeoutMs, "queue add").then(() => undefined));
  const add = async (requests: AddRequest[]) => {
    if (requests.length === 1) return [await addOne(requests[0]!)];
    try {
      const bulk = queue.addBulk(requests.map(toBulkJob));
      await withTimeout(bulk, timeoutMs, "queue addBulk");
      return requests.map(() => ({ ok: true as const, value: undefined }));
    } catch (err) {
      if (err instanceof TimeoutError) return requests.map(() => ({ ok: false as const, error: err }));
      return Promise.all(requests.map(addOne));
    }
  };
  const batcher = createBatcher<AddRequest, void>({
    maxSize,
    maxWaitMs: 0,
    run: async (requests) => {
      const settled = await add(requests);
      if (!afterAdd || !settled.some((s) => s.ok)) return settled;
      // One check for the whole batch (e.g. that its writes reached a replica): until it
      // passes, no job of it counts as added.
      const after = await settle(afterAdd());
      return after.ok ? settled : settled.map((s) => (s.ok ? after : s));
    },
  });
  return (request: AddRequest): Promise<void> => batcher.submit(request);
}
