// The job ledger: one row per write, committed with the write's effect, under the
// write's id as primary key. It is what makes a redelivered write count once, and what
// GET /jobs/:id answers from once Redis has let the write go.
import { jobLedger, type Db } from "@ingest/db";
import { inArray, sql } from "drizzle-orm";
import type { PermanentJobError } from "./errors.js";
import type { Tx } from "./handlers/index.js";
import { moveSequencesPast } from "./ordering.js";
import type { Outcome, WriteEnvelope } from "./write.js";

/** Another delivery of the same write committed first; ours must not count. */
export class AlreadyAppliedError extends Error {}

/**
 * The ledger rows commit with the effects; finished_at is when this statement ran (the
 * commit follows), not when the transaction began. A concurrent delivery of the same write
 * blocks here on the first one's uncommitted row; once that commits, the insert finds
 * it and this transaction rolls its own effects back (AlreadyAppliedError).
 */
export async function recordCompleted(tx: Tx, done: { write: WriteEnvelope; result: unknown }[]): Promise<void> {
  // One parameter for all the rows: at thousands of writes a second, building a
  // placeholder per value costs more than PostgreSQL takes to unpack the JSON.
  const rows = done.map(({ write, result }) => ({
    job_id: write.id,
    queue: write.queue,
    name: write.name,
    result: result ?? null,
    attempts: write.attemptsMade + 1,
    accepted_at: new Date(write.timestamp).toISOString(),
  }));
  const recorded = await tx.execute(sql`
    insert into job_ledger (job_id, queue, name, status, result, attempts, accepted_at, finished_at)
    select job_id, queue, name, 'completed', result, attempts, accepted_at, clock_timestamp()
    from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
      as t(job_id text, queue text, name text, result jsonb, attempts int, accepted_at timestamptz)
    on conflict (job_id) do nothing`);
  if ((recorded.rowCount ?? 0) < done.length) throw new AlreadyAppliedError();
}

/**
 * A permanent failure is recorded like a success, so a redelivery fails the same way
 * without trying again, and the product's sequence moves past it so later edits of
 * the product do not wait for it. Answers the outcome that stands (an earlier
 * delivery's, if one was recorded first).
 */
export async function recordFailure(db: Db, write: WriteEnvelope, err: PermanentJobError): Promise<Outcome> {
  return db.transaction(async (tx) => {
    const claimed = await tx
      .insert(jobLedger)
      .values({
        jobId: write.id,
        queue: write.queue,
        name: write.name,
        status: "failed",
        error: `${err.code}: ${err.message}`,
        attempts: write.attemptsMade + 1,
        acceptedAt: new Date(write.timestamp),
      })
      .onConflictDoNothing({ target: jobLedger.jobId })
      .returning({ jobId: jobLedger.jobId });
    if (claimed.length === 0) return priorOutcome(tx, write.id);
    await moveSequencesPast(tx, [write]);
    return { status: "failed", code: err.code, message: err.message };
  });
}

/** The recorded outcomes of these writes, for those that have one. */
export async function findOutcomes(tx: Tx | Db, ids: string[]): Promise<Map<string, Outcome>> {
  if (ids.length === 0) return new Map();
  const rows = await tx.select().from(jobLedger).where(inArray(jobLedger.jobId, ids));
  return new Map(rows.map((row) => [row.jobId, outcomeOf(row)]));
}

/** The outcome a ledger row records. */
function outcomeOf(row: typeof jobLedger.$inferSelect): Outcome {
  if (row.status === "failed") {
    const [code = "FAILED", ...rest] = (row.error ?? "").split(": ");
    return { status: "failed", code, message: rest.join(": ") };
  }
  return { status: "completed", result: row.result };
}

export async function priorOutcome(tx: Tx | Db, id: string): Promise<Outcome> {
  const outcome = (await findOutcomes(tx, [id])).get(id);
  if (!outcome) throw new Error(`ledger row for ${id} vanished`);
  return outcome;
}

/** Ledger rows outlive the 24-hour status promise by days; older ones go. */
export async function pruneLedger(db: Db, olderThanDays = 7): Promise<number> {
  const res = await db.execute(
    sql`delete from job_ledger where finished_at < now() - make_interval(days => ${olderThanDays}) and status <> 'active'`,
  );
  return res.rowCount ?? 0;
}
