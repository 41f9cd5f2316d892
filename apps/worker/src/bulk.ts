// The bulk lane's processor: a POST /products/bulk batch applied line by line, each line
// a write with an id of its own, through the same loop as the interactive writes.
import { BULK_JOB, BULK_LISTED_MAX, BULK_QUEUE, bulkLineId, JOBS, type BulkCounts, type BulkJobData, type BulkLine } from "@ingest/jobs";
import { jobLedger } from "@ingest/db";
import type { Job } from "bullmq";
import { createLaneProcessor, type BaseDeps } from "./base-processor.js";
import type { CommitInvalidation } from "./catalog-invalidation.js";
import { observeBatch } from "./metrics.js";
import { traceWrites } from "./write-spans.js";
import { runWrites, type RunDeps } from "./run-writes.js";
import type { Outcome, WriteEnvelope } from "./write.js";

type BulkDeps = Omit<RunDeps, "onBatch" | "onOrderWait"> & BaseDeps & {
  catalog: CommitInvalidation;
};

/**
 * Applies a bulk batch: its lines in order, a chunk per transaction, each line exactly
 * once under its own ledger id. A line whose product has an earlier edit still pending
 * (an interactive edit, or a line of an earlier batch) waits for it; the rest of its
 * chunk is applied meanwhile. Progress (counts, the failed lines) is on the job for Bull
 * Board and GET /jobs/:id. A batch job that runs again (worker killed) goes through its
 * lines again: those already applied answer from the ledger.
 */
export function createBulkProcessor(deps: BulkDeps) {
  const run: RunDeps = {
    ...deps,
    onBatch: (size, fellBack) => observeBatch(deps.metrics, size, fellBack),
    onOrderWait: () => deps.metrics.orderWaits.inc(),
  };
  const handle = async (data: BulkJobData, job: Job): Promise<BulkCounts> => {
    const { lines, invalidCount, invalid, requestId } = data;
    const redelivered = job.attemptsStarted > 1 || job.attemptsMade > 0;
    const counts: BulkCounts = { accepted: lines.length, applied: 0, failed: 0, invalid: invalidCount, failures: [], invalidLines: invalid };
    const envelope = (line: BulkLine): WriteEnvelope => ({
      id: bulkLineId(job.id!, line.line),
      name: line.name,
      payload: line.payload,
      ...(line.seq !== undefined ? { seq: line.seq, prevSeq: line.prevSeq ?? null } : {}),
      ...(line.prevJobId ? { prevJobId: line.prevJobId } : {}),
      ...(requestId ? { requestId } : {}),
      queue: BULK_QUEUE,
      timestamp: job.timestamp,
      attemptsMade: job.attemptsMade,
      redelivered,
    });
    let changed: number[] = [];
    const onOutcome = (index: number, write: WriteEnvelope, outcome: Outcome) => {
      deps.metrics.bulkLines.inc({ outcome: outcome.status });
      if (outcome.status === "completed") {
        counts.applied++;
        const invalidates = JOBS[write.name].invalidates as ((payload: unknown, result: unknown) => number[]) | undefined;
        if (invalidates) changed = changed.concat(invalidates(write.payload, outcome.result));
      } else {
        counts.failed++;
        if (counts.failures.length < BULK_LISTED_MAX) counts.failures.push({ line: lines[index]!.line, code: outcome.code, message: outcome.message });
      }
    };
    const afterChunk = async (done: number) => {
      const ids = changed;
      changed = [];
      await deps.catalog.afterCommit(ids);
      await job.updateProgress({ ...counts, done });
    };
    const envelopes = lines.map(envelope);
    // Each line's span, found by its ledger id (none unless tracing is on).
    const spans = traceWrites(BULK_QUEUE, job.id, envelopes);
    try {
      const waiting = await runWrites(spans ? { ...run, inChunk: spans.inChunk } : run, job.id!, envelopes, (index, write, outcome) => (spans?.settled(write, outcome), onOutcome(index, write, outcome)), afterChunk);
      // Without a wait budget none is handed back; were one, the batch must not complete without it.
      if (waiting.length) throw new Error(`${waiting.length} lines still wait for earlier edits of their products`);
    } catch (err) {
      spans?.unsettled(err);
      throw err;
    }
    spans?.unsettled("waiting for an earlier edit of its product", false);

    // The batch's own row: GET /jobs/:id answers from it once the job has left Redis.
    await deps.db
      .insert(jobLedger)
      .values({ jobId: job.id!, queue: BULK_QUEUE, name: BULK_JOB, status: "completed", result: counts, attempts: job.attemptsMade + 1, acceptedAt: new Date(job.timestamp) })
      .onConflictDoNothing({ target: jobLedger.jobId });
    deps.log.info({ jobId: job.id, requestId, accepted: counts.accepted, applied: counts.applied, failed: counts.failed, invalid: counts.invalid }, "bulk batch done");
    return counts;
  };

  return createLaneProcessor({ queue: BULK_QUEUE, read: (job) => (job.name === BULK_JOB ? (job.data as BulkJobData) : undefined), handle }, deps);
}
