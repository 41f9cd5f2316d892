// Applies one write in a transaction of its own: the one-by-one path, beside
// apply-writes.ts, which applies many in one transaction and falls back to this.
import { check, JOBS, orderKeyOf } from "@ingest/jobs";
import type { Db } from "@ingest/db";
import { invalidDataError, PermanentJobError } from "./errors.js";
import { applyContextOf, HANDLERS, type ApplyContext, type Tx, type WriteHandler } from "./handlers/index.js";
import { AlreadyAppliedError, findOutcomes, priorOutcome, recordCompleted, recordFailure } from "./ledger.js";
import { appliedSeqs, lockProducts, orderTurn, setAppliedSeqs } from "./ordering.js";
import type { Outcome, WriteEnvelope } from "./write.js";

type ApplyOptions = { ignorePredecessor?: boolean };

/** The handler of a write, seen through its erased payload type. */
export const handlerOf = (write: WriteEnvelope) => HANDLERS[write.name] as unknown as WriteHandler<typeof write.name> & {
  apply: (tx: Tx, payload: unknown, ctx: ApplyContext) => Promise<unknown>;
  superseded?: (payload: unknown) => unknown;
};

/** What a skipped edit answers: the handler says, so a delete still answers as one. */
export function supersededResult(write: WriteEnvelope): unknown {
  const superseded = handlerOf(write).superseded;
  if (!superseded) throw new Error(`${write.name} is ordered but its handler says nothing of a skipped edit`);
  return superseded(write.payload);
}

/**
 * Applies one write exactly once in effect: its ledger row is inserted in the same
 * transaction as its effect, under the write's id: of two deliveries only one can
 * commit, and a later one finds the recorded outcome. An ordered edit takes its
 * product's lock and applies only in sequence; one older than the edit applied is
 * skipped. An edit whose predecessor is not applied yet throws PredecessorPendingError.
 * A permanent failure (bad payload, missing product, data PostgreSQL refuses) is
 * recorded and answered as failed; anything else is thrown, to be retried.
 */
export async function applyWrite(db: Db, write: WriteEnvelope, opts: ApplyOptions = {}): Promise<Outcome> {
  const checked = check(JOBS[write.name].payload, write.payload);
  if (!checked.ok) {
    const detail = checked.errors.map((e) => `${e.path} ${e.message}`).join("; ");
    return recordFailure(db, write, new PermanentJobError("INVALID_PAYLOAD", `invalid payload: ${detail}`));
  }
  try {
    return await db.transaction((tx) => applyInTx(tx, { ...write, payload: checked.value }, opts));
  } catch (err) {
    if (err instanceof AlreadyAppliedError) return priorOutcome(db, write.id);
    if (err instanceof PermanentJobError) return recordFailure(db, write, err);
    const invalid = invalidDataError(err);
    if (invalid) return recordFailure(db, write, invalid);
    throw err;
  }
}

async function applyInTx(tx: Tx, write: WriteEnvelope, opts: ApplyOptions): Promise<Outcome> {
  // A write tried before may have committed already: then answer from the ledger
  // without doing the work again. First deliveries skip this read.
  if (write.redelivered) {
    const prior = (await findOutcomes(tx, [write.id])).get(write.id);
    if (prior) return prior;
  }
  const ctx = applyContextOf(write);
  const productId = orderKeyOf(write);
  let result: unknown;
  if (productId === undefined) result = await handlerOf(write).apply(tx, write.payload, ctx);
  else {
    if (write.seq === undefined) throw new PermanentJobError("INVALID_PAYLOAD", "ordered edit without a sequence number");
    await lockProducts(tx, [productId]);
    const turn = orderTurn(write, (await appliedSeqs(tx, [productId])).get(productId), opts.ignorePredecessor);
    if (turn === "superseded") result = supersededResult(write);
    else {
      result = await handlerOf(write).apply(tx, write.payload, ctx);
      await setAppliedSeqs(tx, [{ productId, seq: write.seq }]);
    }
  }
  await recordCompleted(tx, [{ write, result }]);
  return { status: "completed", result };
}
