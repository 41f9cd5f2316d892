import type { Db } from "@ingest/db";
import { jobLedger } from "@ingest/db";
import { BULK_JOB, BULK_LISTED_MAX, BULK_QUEUE, bulkLineId, JOBS, type BulkCounts, type BulkJobData, type BulkLine } from "@ingest/jobs";
import { UnrecoverableError, type Job } from "bullmq";
import { setTimeout as sleep } from "node:timers/promises";
import { applyJob, type JobEnvelope, type Outcome } from "./apply.js";
import { applyBatch } from "./apply-batch.js";
import type { CommitInvalidation } from "./catalog-invalidation.js";
import { PredecessorPendingError } from "./errors.js";
import type { Logger } from "./logger.js";
import { observeBatch, type WorkerMetrics } from "./metrics.js";
import { predecessorAlive, wakeSuccessor, type OrderDeps } from "./processor.js";

export type BulkDeps = OrderDeps & {
  db: Db;
  log: Logger;
  metrics: WorkerMetrics;
  catalog: CommitInvalidation;
  /** Lines applied per transaction. */
  chunkSize: number;
};

/**
 * Applies a bulk batch: its lines in order, a chunk at a time, each chunk one micro-batch
 * (applyBatch), each line exactly once under its own ledger id. A line whose product has
 * an earlier edit still pending (an interactive edit, or a line of an earlier batch)
 * waits for it here; the rest of its chunk is applied meanwhile. Progress (counts, the
 * failed lines) is on the job for Bull Board and GET /jobs/:id. A batch job that runs
 * again (worker killed) goes through its lines again: those already applied answer from
 * the ledger.
 */
export function createBulkProcessor(deps: BulkDeps) {
  return async (job: Job<BulkJobData>): Promise<BulkCounts> => {
    if (job.name !== BULK_JOB) throw new UnrecoverableError(`UNKNOWN_JOB: no handler for job name "${job.name}"`);
    const { lines, invalidCount, invalid, requestId } = job.data;
    const redelivered = job.attemptsStarted > 1 || job.attemptsMade > 0;
    const counts: BulkCounts = { accepted: lines.length, applied: 0, failed: 0, invalid: invalidCount, failures: [], invalidLines: invalid };
    const envelope = (line: BulkLine): JobEnvelope => ({
      id: bulkLineId(job.id!, line.line),
      name: line.name,
      queue: BULK_QUEUE,
      data: {
        payload: line.payload,
        ...(line.seq !== undefined ? { seq: line.seq, prevSeq: line.prevSeq ?? null } : {}),
        ...(line.prevJobId ? { prevJobId: line.prevJobId } : {}),
        ...(requestId ? { requestId } : {}),
      },
      timestamp: job.timestamp,
      attemptsMade: job.attemptsMade,
      redelivered,
    });
    const record = async (env: JobEnvelope, line: number, outcome: Outcome) => {
      deps.metrics.bulkLines.inc({ outcome: outcome.status });
      if (outcome.status === "completed") {
        counts.applied++;
        await deps.catalog.afterCommit(env.name, env.data.payload, outcome.result);
      } else {
        counts.failed++;
        if (counts.failures.length < BULK_LISTED_MAX) counts.failures.push({ line, code: outcome.code, message: outcome.message });
      }
      if (JOBS[env.name].ordered) void wakeSuccessor(deps, env.id).catch(() => {});
    };

    for (let start = 0; start < lines.length; start += deps.chunkSize) {
      const chunk = lines.slice(start, start + deps.chunkSize);
      let todo = chunk.map((line) => ({ line: line.line, env: envelope(line) }));
      for (let pause = 20; todo.length; pause = Math.min(pause * 2, 1_000)) {
        const report = await applyBatch(deps.db, todo.map((t) => t.env));
        observeBatch(deps.metrics, todo.length, report.fellBack);
        const settled = await Promise.all(report.settled);
        const waiting: typeof todo = [];
        for (const [k, s] of settled.entries()) {
          if (s.ok) await record(todo[k]!.env, todo[k]!.line, s.value);
          else if (s.error instanceof PredecessorPendingError) waiting.push(todo[k]!);
          // Anything else is transient: the batch job retries, applied lines stay applied.
          else throw s.error;
        }
        todo = waiting;
        if (!todo.length) break;
        const alive = await Promise.all(todo.map((t) => predecessorAlive(deps, job.timestamp, t.env.data.prevJobId)));
        if (!alive.some(Boolean)) {
          // Their predecessors are gone for good: apply them in order without.
          for (const t of todo) await record(t.env, t.line, await applyJob(deps.db, t.env, { ignorePredecessor: true }));
          break;
        }
        deps.metrics.orderWaits.inc();
        await sleep(pause);
      }
      await job.updateProgress({ ...counts, done: Math.min(start + deps.chunkSize, lines.length) });
    }

    // The batch's own row: GET /jobs/:id answers from it once the job has left Redis.
    await deps.db
      .insert(jobLedger)
      .values({ jobId: job.id!, queue: BULK_QUEUE, name: BULK_JOB, status: "completed", result: counts, attempts: job.attemptsMade + 1, acceptedAt: new Date(job.timestamp) })
      .onConflictDoNothing({ target: jobLedger.jobId });
    deps.log.info({ jobId: job.id, requestId, accepted: counts.accepted, applied: counts.applied, failed: counts.failed, invalid: counts.invalid }, "bulk batch done");
    return counts;
  };
}
