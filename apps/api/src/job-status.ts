// GET /jobs/:id: a write's state, from Redis while its job is there, from the ledger after.
import { jobLedger, type Db } from "@ingest/db";
import { BULK_JOB, carrierIdOf, isClientJobId, queueOfJobId, writesOf, type BulkJobData, type Queues, type WritesResult } from "@ingest/jobs";
import type { Job } from "bullmq";
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
 * (finished and retried runs), plus the run in progress.
 */
const attemptsSpent = (attemptsMade: number, state: JobStatus["state"]) => attemptsMade + (state === "active" ? 1 : 0);

const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : undefined);

export type JobStatusReader = { get(id: string): Promise<JobStatus | undefined>; exists(id: string): Promise<boolean> };

/**
 * A write's state: its own job's while it has one (a single write, a write spilled from
 * its carrier, a bulk batch), else its carrier's, with its own result once the carrier
 * finished; the PostgreSQL ledger's once Redis has let it go. A write the ledger has
 * finished is finished, whatever its carrier is still doing with its other writes.
 */
/**
 * onLedgerCompleted: a write the ledger reports completed while its job has not finished
 * (the worker commits, then invalidates the cache, then completes the job). It runs
 * before that answer, so a read after "completed" never finds the old copy.
 */
export function createJobStatusReader(
  queues: Queues,
  db: Db,
  redisReady: () => boolean,
  onLedgerCompleted: (write: { name: string; result: unknown }) => Promise<void> = async () => {},
): JobStatusReader {
  // State first, then the job: a job is moved to completed/failed in the same script that
  // writes its result, so reading in this order never pairs "completed" with no result.
  const read = async (queue: keyof Queues, id: string): Promise<{ state: JobStatus["state"]; job: Job } | undefined> => {
    const state = STATE[await queues[queue].getJobState(id)];
    if (!state) return undefined;
    const job = await queues[queue].getJob(id);
    return job ? { state, job } : undefined;
  };

  const finish = (status: JobStatus, job: Job) => {
    const finishedAt = status.state === "completed" || status.state === "failed" ? iso(job.finishedOn) : undefined;
    if (finishedAt) status.finishedAt = finishedAt;
    return status;
  };

  const ownJob = ({ state, job }: { state: JobStatus["state"]; job: Job }, id: string): JobStatus => {
    const data = job.data as { acceptedAt?: unknown } | undefined;
    const accepted = typeof data?.acceptedAt === "number" ? data.acceptedAt : job.timestamp;
    const status: JobStatus = { id, type: job.name, state, attempts: attemptsSpent(job.attemptsMade, state), acceptedAt: iso(accepted)! };
    if (state === "completed") status.result = job.returnvalue;
    else if (job.name === BULK_JOB && state !== "failed") status.progress = bulkProgress(job.data as BulkJobData, job.progress);
    if (state === "failed") status.error = publicReason(job.failedReason);
    return finish(status, job);
  };

  const inCarrier = ({ state, job }: { state: JobStatus["state"]; job: Job }, id: string): JobStatus | undefined => {
    const writes = writesOf(job);
    const index = writes?.findIndex((w) => w.id === id) ?? -1;
    if (!writes || index < 0) return undefined;
    const status: JobStatus = { id, type: writes[index]!.name, state, attempts: attemptsSpent(job.attemptsMade, state), acceptedAt: iso(job.timestamp)! };
    if (state === "completed") {
      const outcome = (job.returnvalue as WritesResult | null)?.results?.[index];
      // No outcome: the write became a job of its own, since removed; the ledger knows.
      if (!outcome) return undefined;
      if (outcome.state === "failed") {
        status.state = "failed";
        status.error = publicReason(outcome.error);
      } else status.result = outcome.result;
    } else if (state === "failed") status.error = publicReason(job.failedReason);
    return finish(status, job);
  };

  const fromRedis = async (id: string): Promise<JobStatus | undefined> => {
    const queue = queueOfJobId(id);
    if (!queue) return undefined;
    // BullMQ waits for a lost connection instead of failing; do not wait with it.
    if (!redisReady()) throw new Error("queue Redis is not connected");
    const own = await read(queue, id);
    if (own) return ownJob(own, id);
    const carrierId = carrierIdOf(id);
    const carrier = carrierId ? await read(queue, carrierId) : undefined;
    return carrier ? inCarrier(carrier, id) : undefined;
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
    if (!isClientJobId(id) || !queueOfJobId(id)) return undefined;
    let redisError: unknown;
    let live: JobStatus | undefined;
    try {
      live = await fromRedis(id);
      if (live?.state === "completed") return live;
    } catch (err) {
      redisError = err;
    }
    // The ledger may know better than a job still queued or running (a write done inside
    // a carrier busy with others); if PostgreSQL cannot say, Redis's answer stands.
    let durable: JobStatus | undefined;
    try {
      durable = await fromLedger(id);
    } catch (err) {
      if (live) return live;
      throw err;
    }
    // Done in PostgreSQL while its job still runs: the worker may not have invalidated yet.
    if (durable?.state === "completed" && live) await onLedgerCompleted({ name: durable.type, result: durable.result });
    if (durable) return durable;
    if (live) return live;
    // Redis could not be asked and PostgreSQL does not know it: we cannot say "unknown".
    if (redisError) throw redisError;
    return undefined;
  };

  return { get, exists: async (id) => (await get(id)) !== undefined };
}
