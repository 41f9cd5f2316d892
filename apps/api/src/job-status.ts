import { jobLedger, type Db } from "@ingest/db";
import { BULK_JOB, queueOfJobId, type BulkJobData, type Queues } from "@ingest/jobs";
import { eq } from "drizzle-orm";

export type JobStatus = {
  id: string;
  type: string;
  state: "queued" | "active" | "completed" | "failed";
  attempts: number;
  result?: unknown;
  /** A bulk batch's counts so far, while it is queued or running. */
  progress?: unknown;
  error?: string;
  acceptedAt: string;
  finishedAt?: string;
};

const STATE: Record<string, JobStatus["state"]> = {
  waiting: "queued",
  wait: "queued",
  delayed: "queued",
  prioritized: "queued",
  "waiting-children": "queued",
  active: "active",
  completed: "completed",
  failed: "failed",
};

// Permanent failures carry a code we wrote ("PRODUCT_NOT_FOUND: ..."); anything
// else is a driver or network message that stays in the logs and Bull Board.
const PUBLIC_REASON = /^[A-Z][A-Z_]+: /;
const publicReason = (reason: string | undefined) =>
  reason && PUBLIC_REASON.test(reason) ? reason : "the job could not be applied after all retries";

/** Before the worker reports any progress, a batch has applied nothing yet. */
function bulkProgress(data: BulkJobData, progress: unknown) {
  if (progress && typeof progress === "object") return progress;
  return { accepted: data.lines.length, applied: 0, failed: 0, invalid: data.invalidCount, failures: [], invalidLines: data.invalid, done: 0 };
}

/**
 * Attempts spent, as the ledger counts them once the job is done: BullMQ's attemptsMade
 * (finished and retried runs), plus the run in progress. Not attemptsStarted: an edit
 * parked behind an earlier edit of its product (moveToDelayed) starts again each time it
 * is woken without spending an attempt.
 */
const attemptsSpent = (attemptsMade: number, state: JobStatus["state"]) => attemptsMade + (state === "active" ? 1 : 0);

const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : undefined);

export type JobStatusReader = { get(id: string): Promise<JobStatus | undefined>; exists(id: string): Promise<boolean> };

/** Redis while the job is there; the PostgreSQL ledger after it has been removed. */
export function createJobStatusReader(queues: Queues, db: Db, redisReady: () => boolean): JobStatusReader {
  const fromRedis = async (id: string): Promise<JobStatus | undefined> => {
    const queue = queueOfJobId(id);
    if (!queue) return undefined;
    // BullMQ waits for a lost connection instead of failing; do not wait with it.
    if (!redisReady()) throw new Error("queue Redis is not connected");
    // State first, then the job: a job is moved to completed/failed in the same script
    // that writes its result, so reading in this order never pairs "completed" with a
    // result not yet written.
    const state = STATE[await queues[queue].getJobState(id)];
    if (!state) return undefined;
    const job = await queues[queue].getJob(id);
    if (!job) return undefined;
    const status: JobStatus = {
      id,
      type: job.name,
      state,
      attempts: attemptsSpent(job.attemptsMade, state),
      acceptedAt: iso(job.timestamp)!,
    };
    if (state === "completed") status.result = job.returnvalue;
    else if (job.name === BULK_JOB && state !== "failed") status.progress = bulkProgress(job.data as BulkJobData, job.progress);
    if (state === "failed") status.error = publicReason(job.failedReason);
    const finishedAt = state === "completed" || state === "failed" ? iso(job.finishedOn) : undefined;
    if (finishedAt) status.finishedAt = finishedAt;
    return status;
  };

  const fromLedger = async (id: string): Promise<JobStatus | undefined> => {
    const [row] = await db.select().from(jobLedger).where(eq(jobLedger.jobId, id));
    if (!row || (row.status !== "completed" && row.status !== "failed")) return undefined;
    const status: JobStatus = {
      id,
      type: row.name,
      state: row.status,
      attempts: row.attempts,
      acceptedAt: row.acceptedAt.toISOString(),
      finishedAt: row.finishedAt.toISOString(),
    };
    if (row.status === "completed") status.result = row.result;
    else status.error = publicReason(row.error ?? undefined);
    return status;
  };

  const get = async (id: string) => {
    if (!queueOfJobId(id)) return undefined;
    let redisError: unknown;
    try {
      const found = await fromRedis(id);
      if (found) return found;
    } catch (err) {
      redisError = err;
    }
    const durable = await fromLedger(id);
    if (durable) return durable;
    // Redis could not be asked and PostgreSQL does not know it: we cannot say "unknown".
    if (redisError) throw redisError;
    return undefined;
  };

  return { get, exists: async (id) => (await get(id)) !== undefined };
}
