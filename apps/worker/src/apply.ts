import { jobLedger, productVersions, type Db } from "@ingest/db";
import { check, JOBS, type JobData, type JobName, type QueueName } from "@ingest/jobs";
import { eq, sql } from "drizzle-orm";
import { invalidDataError, PermanentJobError, PredecessorPendingError } from "./errors.js";
import { HANDLERS, type ApplyContext, type Tx } from "./handlers/index.js";

// Namespace of the transaction-scoped advisory locks that serialise edits per product.
export const PRODUCT_LOCK_NAMESPACE = 1;

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
 * This is the one-by-one path: applyBatch (apply-batch.ts) widens the transaction to
 * many jobs and falls back to this when a batch cannot commit as a whole.
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
    const invalid = invalidDataError(err);
    if (invalid) return recordFailure(db, job, invalid);
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

  const handler = HANDLERS[job.name] as (tx: Tx, payload: unknown, ctx: ApplyContext) => Promise<unknown>;
  const ctx: ApplyContext = { jobId: job.id, requestId: job.data.requestId };
  let result: unknown;
  if (JOBS[job.name].ordered) {
    const productId = (payload as { productId: number }).productId;
    const { seq, prevSeq = null } = job.data;
    if (seq === undefined) throw new PermanentJobError("INVALID_PAYLOAD", "ordered edit without a sequence number");
    await tx.execute(sql`select pg_advisory_xact_lock(${PRODUCT_LOCK_NAMESPACE}, ${productId})`);
    const turn = orderTurn(job, seq, prevSeq, await appliedSeq(tx, productId), opts);
    if (turn === "superseded") result = supersededResult(job.name, productId);
    else {
      result = await handler(tx, payload, ctx);
      await setAppliedSeq(tx, productId, seq);
    }
  } else {
    result = await handler(tx, payload, ctx);
  }

  await recordCompleted(tx, [{ job, result }]);
  return { status: "completed", result };
}

/**
 * Whether an ordered edit applies now, given the product's last applied sequence:
 * an older edit than the one in place is superseded (it must not overwrite it); one
 * whose predecessor has not been applied waits (throws PredecessorPendingError).
 */
export function orderTurn(
  job: JobEnvelope,
  seq: number,
  prevSeq: number | null,
  applied: number | undefined,
  opts: ApplyOptions = {},
): "apply" | "superseded" {
  if (applied !== undefined && applied >= seq) return "superseded";
  const waiting = prevSeq !== null && (applied === undefined || applied < prevSeq);
  if (waiting && !opts.ignorePredecessor) throw new PredecessorPendingError(job.data.prevJobId);
  return "apply";
}

export const supersededResult = (name: JobName, productId: number) =>
  name === "product.delete" ? { productId, deleted: true } : { productId };

/**
 * The ledger rows commit with the effects. A concurrent delivery of the same job
 * blocks here on the first one's uncommitted row; once that commits, the insert
 * finds it and this transaction rolls its own effects back.
 */
export async function recordCompleted(tx: Tx, done: { job: JobEnvelope; result: unknown }[]): Promise<void> {
  // One parameter for all the rows: at thousands of jobs a second, building a
  // placeholder per value costs more than PostgreSQL takes to unpack the JSON.
  const rows = done.map(({ job, result }) => ({
    job_id: job.id,
    queue: job.queue,
    name: job.name,
    result: result ?? null,
    attempts: job.attemptsMade + 1,
    accepted_at: new Date(job.timestamp).toISOString(),
  }));
  const recorded = await tx.execute(sql`
    insert into job_ledger (job_id, queue, name, status, result, attempts, accepted_at)
    select job_id, queue, name, 'completed', result, attempts, accepted_at
    from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
      as t(job_id text, queue text, name text, result jsonb, attempts int, accepted_at timestamptz)
    on conflict (job_id) do nothing`);
  if ((recorded.rowCount ?? 0) < done.length) throw new AlreadyAppliedError();
}

/** Another delivery of the same job committed first; ours must not count. */
export class AlreadyAppliedError extends Error {}

async function findOutcome(tx: Tx | Db, jobId: string): Promise<Outcome | undefined> {
  const [row] = await tx.select().from(jobLedger).where(eq(jobLedger.jobId, jobId));
  return row ? outcomeOf(row) : undefined;
}

/** The outcome a ledger row records. */
export function outcomeOf(row: typeof jobLedger.$inferSelect): Outcome {
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

export async function appliedSeq(tx: Tx, productId: number): Promise<number | undefined> {
  const [row] = await tx
    .select({ seq: productVersions.seq })
    .from(productVersions)
    .where(eq(productVersions.productId, productId));
  return row?.seq;
}

export async function setAppliedSeq(tx: Tx, productId: number, seq: number): Promise<void> {
  await setAppliedSeqs(tx, [{ productId, seq }]);
}

/** Moves each product's applied sequence forward (never back). */
export async function setAppliedSeqs(tx: Tx, rows: { productId: number; seq: number }[]): Promise<void> {
  await tx
    .insert(productVersions)
    .values(rows)
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
