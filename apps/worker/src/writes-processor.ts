// The processor of the write queues: a carrier job's writes (or a single write's job)
// applied exactly once each, their outcomes returned per write, and every write that
// fails for good turned into a failed job of its own, so Bull Board shows it with its
// reason and an operator can retry it there.
import { JOBS, writesOf, WRITES_JOB, type JobData, type Queues, type Write, type WriteOutcome, type WriteQueueName, type WritesResult } from "@ingest/jobs";
import { traceFieldsOf } from "@ingest/telemetry";
import { DelayedError, UnrecoverableError, type Job } from "bullmq";
import { createLaneProcessor, type BaseDeps, type JobScope } from "./base-processor.js";
import { traceWrites } from "./write-spans.js";
import type { CommitInvalidation } from "./catalog-invalidation.js";
import { observeBatch } from "./metrics.js";
import { databaseUnavailable } from "./errors.js";
import { runWrites, type RunDeps } from "./run-writes.js";
import { awaitPredecessors } from "./successors.js";
import type { Outcome, WriteEnvelope } from "./write.js";

export type WritesProcessorDeps = Omit<RunDeps, "onBatch" | "onOrderWait"> & BaseDeps & {
  queues: Queues;
  catalog: CommitInvalidation;
  /** Follow-ups of the writes a chunk completed (the welcome emails of registrations); must not throw. */
  afterApplied?: (applied: { write: WriteEnvelope; result: unknown }[]) => Promise<void>;
};

/** The product ids whose cached reads a completed write changed. */
function invalidatedBy(write: WriteEnvelope, result: unknown): number[] {
  const invalidates = JOBS[write.name].invalidates as ((payload: unknown, result: unknown) => number[]) | undefined;
  return invalidates ? invalidates(write.payload, result).filter(Number.isInteger) : [];
}

/** The job data of a write that becomes a job of its own. */
function spilledData(write: WriteEnvelope, carrierId: string): JobData {
  const { id: _id, name: _name, queue: _queue, timestamp, attemptsMade: _a, redelivered: _r, ...data } = write;
  return { ...data, spilledFrom: carrierId, acceptedAt: timestamp };
}

// A job whose edits still wait after the wait budget comes back after this, doubling.
const PARK_FIRST_MS = 100;
const PARK_MAX_MS = 5_000;
// A job that found PostgreSQL unreachable comes back after this, doubling to PARK_MAX_MS.
const UNAVAILABLE_FIRST_MS = 500;
// How long a job's edits wait in the worker for their predecessors before it parks.
const WAIT_BUDGET_MS = 1_000;

export function createWritesProcessor(queue: WriteQueueName, deps: WritesProcessorDeps) {
  const run: RunDeps = {
    waitBudgetMs: WAIT_BUDGET_MS,
    ...deps,
    onBatch: (size, fellBack) => observeBatch(deps.metrics, size, fellBack),
    onOrderWait: () => deps.metrics.orderWaits.inc(),
  };

  /** Writes as their own jobs, failing at once when run (attempts 1): the ledger answers a permanent failure. */
  const spill = (carrierId: string, writes: WriteEnvelope[]) =>
    deps.queues[queue].addBulk(
      writes.map((w) => ({ name: w.name, data: spilledData(w, carrierId) as never, opts: { jobId: w.id, attempts: 1 } })),
    );

  /** The job steps aside without spending an attempt, and comes back later (DelayedError). */
  const park = async (job: Job, token: string | undefined, firstMs: number, parked?: () => Promise<void>): Promise<never> => {
    // Times this job stepped aside since its last failed attempt.
    const times = job.attemptsStarted - job.attemptsMade - 1;
    await job.moveToDelayed(Date.now() + Math.min(firstMs * 2 ** Math.max(0, times), PARK_MAX_MS), token);
    await parked?.();
    throw new DelayedError();
  };

  const handle = async (writes: Write[], job: Job, scope: JobScope): Promise<WritesResult | unknown> => {
    const { token } = scope;
    const carrier = job.name === WRITES_JOB;
    const redelivered = job.attemptsStarted > 1 || job.attemptsMade > 0;
    const envelopes: WriteEnvelope[] = writes.map((w) => ({
      ...w,
      queue,
      timestamp: w.acceptedAt ?? job.timestamp,
      attemptsMade: job.attemptsMade,
      redelivered: redelivered || w.spilledFrom !== undefined,
    }));
    if (carrier) deps.metrics.carrierWrites.observe(writes.length);
    // Each write's span in the trace of the request that made it (none unless tracing is on).
    const spans = traceWrites(queue, job.id, envelopes);

    const outcomes: (Outcome | undefined)[] = new Array(envelopes.length);
    let changed: number[] = [];
    let applied: { write: WriteEnvelope; result: unknown }[] = [];
    const onOutcome = (index: number, write: WriteEnvelope, outcome: Outcome) => {
      outcomes[index] = outcome;
      spans?.settled(write, outcome);
      scope.settled(write.name, outcome.status);
      if (outcome.status === "completed") {
        changed = changed.concat(invalidatedBy(write, outcome.result));
        if (deps.afterApplied) applied.push({ write, result: outcome.result });
        return;
      }
      // A spilled write's failure was counted and logged when it first failed.
      if (write.spilledFrom !== undefined) return;
      scope.failed(write.name, "permanent");
      // The write's own trace, not the carrier's.
      deps.log.warn({ jobId: write.id, jobName: write.name, requestId: write.requestId, code: outcome.code, reason: outcome.message, ...traceFieldsOf(write.trace) }, "write failed permanently");
    };
    // Before the job reports completed: the next read after that must miss the cache.
    const afterChunk = async () => {
      const ids = changed;
      const done = applied;
      changed = [];
      applied = [];
      if (ids.length) await deps.catalog.afterCommit(ids);
      if (done.length) await deps.afterApplied?.(done);
    };

    let waiting: WriteEnvelope[];
    try {
      waiting = await runWrites(spans ? { ...run, inChunk: spans.inChunk } : run, job.id!, envelopes, onOutcome, afterChunk);
    } catch (err) {
      spans?.unsettled(err);
      await afterChunk();
      const unfinished = envelopes.filter((_, k) => outcomes[k] === undefined);
      if (databaseUnavailable(err)) {
        // A restart, a failover or a dead connection is not the writes' fault: they wait
        // for the database without using up their retries, however long it is away.
        deps.log.warn({ err, jobId: job.id, writes: unfinished.length }, "PostgreSQL unavailable; job parked until it answers");
        return park(job, token, UNAVAILABLE_FIRST_MS);
      }
      for (const w of unfinished) scope.failed(w.name, "transient");
      const last = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (!carrier || !last) {
        deps.log.warn({ err, jobId: job.id, writes: unfinished.length, attempt: job.attemptsMade + 1 }, "writes not applied, will retry");
        throw err;
      }
      // Out of retries: each write left becomes a job of its own that fails with the
      // reason (Bull Board shows it; a retry there applies it once the cause is gone).
      deps.log.error({ err, jobId: job.id, writes: unfinished.length }, "writes failed for good; each becomes a job of its own");
      await spill(job.id!, unfinished);
      waiting = [];
    }
    spans?.unsettled("waiting for an earlier edit of its product", false);
    if (waiting.length) {
      // Earlier edits of their products are still pending: the job steps aside (spending
      // no attempt) so its slot can run them, and comes back for the waiting writes; the
      // writes it applied answer from the ledger then.
      // The worker that settles an awaited edit brings the job back (successors.ts); the
      // backoff is for when none does.
      deps.log.debug({ jobId: job.id, waiting: waiting.length }, "writes wait for earlier edits; job parked");
      return park(job, token, PARK_FIRST_MS, () => awaitPredecessors(deps, job, waiting));
    }

    if (!carrier) {
      const outcome = outcomes[0]!;
      if (outcome.status === "failed") throw new UnrecoverableError(`${outcome.code}: ${outcome.message}`);
      return outcome.result;
    }
    const failed = envelopes.filter((_, k) => outcomes[k]?.status === "failed");
    if (failed.length) await spill(job.id!, failed);
    const results: (WriteOutcome | null)[] = Array.from(outcomes, (o) =>
      o === undefined ? null : o.status === "completed" ? { state: "completed", result: o.result } : { state: "failed", error: `${o.code}: ${o.message}` },
    );
    return { results } as WritesResult;
  };

  return createLaneProcessor({ queue, read: writesOf, handle }, deps);
}
