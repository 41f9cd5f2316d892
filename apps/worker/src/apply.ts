import { jobLedger, productVersions, type Db } from "@ingest/db";
import { check, JOBS, type JobData, type JobName, type QueueName } from "@ingest/jobs";
import { eq, sql } from "drizzle-orm";
import { PermanentJobError, PredecessorPendingError } from "./errors.js";
import { HANDLERS, type Tx } from "./handlers/index.js";

// Namespace of the transaction-scoped advisory locks that serialise edits per product.
const PRODUCT_LOCK_NAMESPACE = 1;

export type JobEnvelope = {
  id: string;
  name: JobName;
  queue: QueueName;
  data: JobData;
  timestamp: number;
  attemptsMade: number;
  /** Started before (a retry, or a run whose worker died or lost its lock). */
  redelivered: boolean;
};

export type Outcome =
  | { status: "completed"; result: unknown }
  | { status: "failed"; code: string; message: string };

export type ApplyOptions = { ignorePredecessor?: boolean };

/**
 * Applies one job exactly once in effect. The job's ledger row is inserted in the
 * same transaction as its effect, under the job id's primary key: of two deliveries
 * of one job only one can commit, and a later one finds the recorded outcome. Ordered edits take the product's
 * lock and apply only in sequence; an edit older than the one applied is skipped.
 * The transaction is the unit a later batcher can widen to several jobs.
 */
export async function applyJob(db: Db, job: JobEnvelope, opts: ApplyOptions = {}): Promise<Outcome> {
  const def = JOBS[job.name];
  const checked = check(def.payload, job.data.payload);
  if (!checked.ok) {
    const detail = checked.errors.map((e) => `${e.path} ${e.message}`).join("; ");
    return recordFailure(db, job, new PermanentJobError("INVALID_PAYLOAD", `invalid payload: ${detail}`));
  }
  try {
    return await db.transaction((tx) => applyInTx(tx, job, checked.value, opts));
  } catch (err) {
    if (err instanceof AlreadyAppliedError) return priorOutcome(db, job.id);
    if (err instanceof PermanentJobError) return recordFailure(db, job, err);
    throw err;
  }
}

async function applyInTx(tx: Tx, job: JobEnvelope, payload: unknown, opts: ApplyOptions): Promise<Outcome> {
  // A job that ran before may have committed already: then answer from the ledger
  // without doing the work again. First runs skip this read.
  if (job.redelivered) {
    const prior = await findOutcome(tx, job.id);
    if (prior) return prior;
  }

  const handler = HANDLERS[job.name] as (tx: Tx, payload: unknown, ctx: { jobId: string }) => Promise<unknown>;
  let result: unknown;
  if (JOBS[job.name].ordered) {
    const productId = (payload as { productId: number }).productId;
    const { seq, prevSeq = null } = job.data;
    if (seq === undefined) throw new PermanentJobError("INVALID_PAYLOAD", "ordered edit without a sequence number");
    await tx.execute(sql`select pg_advisory_xact_lock(${PRODUCT_LOCK_NAMESPACE}, ${productId})`);
    const applied = await appliedSeq(tx, productId);
    if (applied !== undefined && applied >= seq) {
      // A newer edit is already in place: this older one must not overwrite it.
      result = job.name === "product.delete" ? { productId, deleted: true } : { productId };
    } else {
      const waiting = prevSeq !== null && (applied === undefined || applied < prevSeq);
      if (waiting && !opts.ignorePredecessor) throw new PredecessorPendingError(job.data.prevJobId);
      result = await handler(tx, payload, { jobId: job.id });
      await setAppliedSeq(tx, productId, seq);
    }
  } else {
    result = await handler(tx, payload, { jobId: job.id });
  }

  // The ledger row commits with the effect. A concurrent delivery of the same job
  // blocks here on the first one's uncommitted row; once that commits, the insert
  // finds it and this transaction rolls its own effect back.
  const recorded = await tx
    .insert(jobLedger)
    .values({
      jobId: job.id,
      queue: job.queue,
      name: job.name,
      status: "completed",
      result,
      attempts: job.attemptsMade + 1,
      acceptedAt: new Date(job.timestamp),
    })
    .onConflictDoNothing({ target: jobLedger.jobId })
    .returning({ jobId: jobLedger.jobId });
  if (recorded.length === 0) throw new AlreadyAppliedError();
  return { status: "completed", result };
}

/** Another delivery of the same job committed first; ours must not count. */
class AlreadyAppliedError extends Error {}

async function findOutcome(tx: Tx | Db, jobId: string): Promise<Outcome | undefined> {
  const [row] = await tx.select().from(jobLedger).where(eq(jobLedger.jobId, jobId));
  if (!row) return undefined;
  if (row.status === "failed") {
    const [code = "FAILED", ...rest] = (row.error ?? "").split(": ");
    return { status: "failed", code, message: rest.join(": ") };
  }
  return { status: "completed", result: row.result };
}

async function priorOutcome(tx: Tx | Db, jobId: string): Promise<Outcome> {
  const outcome = await findOutcome(tx, jobId);
  if (!outcome) throw new Error(`ledger row for ${jobId} vanished`);
  return outcome;
}

async function appliedSeq(tx: Tx, productId: number): Promise<number | undefined> {
  const [row] = await tx
    .select({ seq: productVersions.seq })
    .from(productVersions)
    .where(eq(productVersions.productId, productId));
  return row?.seq;
}

async function setAppliedSeq(tx: Tx, productId: number, seq: number): Promise<void> {
  await tx
    .insert(productVersions)
    .values({ productId, seq })
    .onConflictDoUpdate({
      target: productVersions.productId,
      set: { seq: sql`greatest(${productVersions.seq}, excluded.seq)`, updatedAt: sql`now()` },
    });
}

/**
 * A permanent failure is recorded like a success, so a redelivery fails the same way
 * without trying again, and the product's sequence moves past it so later edits of
 * the product do not wait for it.
 */
async function recordFailure(db: Db, job: JobEnvelope, err: PermanentJobError): Promise<Outcome> {
  const message = `${err.code}: ${err.message}`;
  return db.transaction(async (tx) => {
    const claimed = await tx
      .insert(jobLedger)
      .values({
        jobId: job.id,
        queue: job.queue,
        name: job.name,
        status: "failed",
        error: message,
        attempts: job.attemptsMade + 1,
        acceptedAt: new Date(job.timestamp),
      })
      .onConflictDoNothing({ target: jobLedger.jobId })
      .returning({ jobId: jobLedger.jobId });
    if (claimed.length === 0) return priorOutcome(tx, job.id);
    const productId = (job.data.payload as { productId?: unknown }).productId;
    if (JOBS[job.name].ordered && typeof job.data.seq === "number" && Number.isInteger(productId)) {
      await setAppliedSeq(tx, productId as number, job.data.seq);
    }
    return { status: "failed", code: err.code, message: err.message };
  });
}

/** Ledger rows outlive the 24-hour status promise by days; older ones go. */
export async function pruneLedger(db: Db, olderThanDays = 7): Promise<number> {
  const res = await db.execute(
    sql`delete from job_ledger where finished_at < now() - make_interval(days => ${olderThanDays}) and status <> 'active'`,
  );
  return res.rowCount ?? 0;
}
