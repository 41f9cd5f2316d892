// Applies many writes in one transaction, beside apply-write.ts (one write, one
// transaction), which it falls back to when the many cannot commit together.
import { settle, type Settled } from "@ingest/runtime";
import type { Db } from "@ingest/db";
import { check, JOBS, orderKeyOf, type JobName } from "@ingest/jobs";
import { sql } from "drizzle-orm";
import { applyWrite, handlerOf, supersededResult } from "./apply-write.js";
import { PermanentJobError, PredecessorPendingError } from "./errors.js";
import { applyContextOf, type ApplyContext, type Tx } from "./handlers/index.js";
import { findOutcomes, recordCompleted } from "./ledger.js";
import { appliedSeqs, lockProducts, orderTurn, setAppliedSeqs } from "./ordering.js";
import type { Outcome, WriteEnvelope } from "./write.js";

type Item = { index: number; write: WriteEnvelope };

type BatchReport = {
  /** One per write, in order: known now, or (writes applied one by one) as each finishes. */
  settled: (Settled<Outcome> | Promise<Settled<Outcome>>)[];
  /** The writes could not commit as a whole and were applied one by one. */
  fellBack: boolean;
};

// A write stuck on a lock (another delivery of it still running) must not hold its
// neighbours for long: the transaction gives up and they go one by one.
const LOCK_TIMEOUT_MS = 1_000;

/**
 * Applies writes in one transaction: one commit, the multi-row form of a handler where
 * it has one, one ledger insert, the products' order locks taken together. Exactly-once
 * holds as in applyWrite: every write's ledger row commits with its effect. When
 * anything fails (a write that fails for good, a ledger row another delivery committed
 * first, a lock held too long, a deadlock), the transaction rolls back and the writes
 * are applied one by one, so a bad write fails alone and its neighbours still commit.
 * An edit whose predecessor is not applied yet settles with PredecessorPendingError.
 */
export async function applyWrites(db: Db, writes: WriteEnvelope[]): Promise<BatchReport> {
  const settled: BatchReport["settled"] = new Array(writes.length);
  const items: Item[] = [];
  const oneByOne: number[] = [];
  writes.forEach((write, index) => {
    const checked = check(JOBS[write.name].payload, write.payload);
    // Invalid payloads are recorded as failures by the one-by-one path.
    if (checked.ok) items.push({ index, write: { ...write, payload: checked.value } });
    else oneByOne.push(index);
  });
  let fellBack = false;
  const recordMany = fastPathOf(items);
  if (recordMany) {
    try {
      const results = await recordMany(
        db,
        items.map((i) => ({ payload: i.write.payload, ctx: applyContextOf(i.write), ledger: { queue: i.write.queue, attempts: i.write.attemptsMade + 1, acceptedAt: i.write.timestamp } })),
      );
      items.forEach((item, k) => {
        const result = results[k];
        if (result === undefined) oneByOne.push(item.index);
        else settled[item.index] = { ok: true, value: { status: "completed", result } };
      });
    } catch {
      fellBack = true;
      oneByOne.push(...items.map((i) => i.index));
    }
  } else if (items.length === 1) oneByOne.push(items[0]!.index);
  else if (items.length > 1) {
    try {
      const outcomes = await db.transaction(async (tx) => {
        await tx.execute(sql.raw(`set local lock_timeout = ${LOCK_TIMEOUT_MS}`));
        return applyAllInTx(tx, items);
      });
      for (const [index, s] of outcomes) settled[index] = s;
    } catch {
      fellBack = true;
      oneByOne.push(...items.map((i) => i.index));
    }
  }
  if (oneByOne.length) applyOneByOne(db, writes, oneByOne, settled);
  return { settled, fellBack };
}

/**
 * The one-statement form of the handler, when every write is a first delivery of one
 * kind that has it: nothing to read from the ledger first, nothing to order.
 */
function fastPathOf(items: Item[]) {
  const first = items[0];
  if (!first || items.some((i) => i.write.redelivered || i.write.name !== first.write.name || orderKeyOf(i.write) !== undefined)) return undefined;
  return handlerOf(first.write).recordMany as
    | ((db: Db, items: { payload: unknown; ctx: ApplyContext; ledger: { queue: string; attempts: number; acceptedAt: number } }[]) => Promise<unknown[]>)
    | undefined;
}

/**
 * Each write in its own transaction, each answered as soon as it is done. A product's
 * edits go one after another in sequence order (a predecessor in the same batch first);
 * everything else runs side by side, so a write that blocks holds up only the edits of
 * its product queued behind it.
 */
function applyOneByOne(db: Db, writes: WriteEnvelope[], indices: number[], settled: BatchReport["settled"]): void {
  const tails = new Map<string, Promise<unknown>>();
  const chainOf = (index: number): string => {
    const productId = orderKeyOf(writes[index]!);
    return Number.isInteger(productId) ? `product:${productId}` : `write:${index}`;
  };
  const ordered = [...indices].sort((a, b) => (writes[a]!.seq ?? 0) - (writes[b]!.seq ?? 0) || a - b);
  for (const index of ordered) {
    const key = chainOf(index);
    const run = (tails.get(key) ?? Promise.resolve()).then(() => settle(applyWrite(db, writes[index]!)));
    tails.set(key, run);
    settled[index] = run;
  }
}

async function applyAllInTx(tx: Tx, items: Item[]): Promise<Map<number, Settled<Outcome>>> {
  const out = new Map<number, Settled<Outcome>>();

  // Retries and redeliveries that already committed answer from the ledger.
  const prior = await findOutcomes(tx, items.filter((i) => i.write.redelivered).map((i) => i.write.id));
  for (const i of items) {
    const outcome = prior.get(i.write.id);
    if (outcome) out.set(i.index, { ok: true, value: outcome });
  }
  const todo = items.filter((i) => !out.has(i.index));
  const unordered = todo.filter((i) => orderKeyOf(i.write) === undefined);
  const ordered = todo.filter((i) => orderKeyOf(i.write) !== undefined);

  const done: { item: Item; result: unknown }[] = [];
  for (const [name, group] of groupByName(unordered)) {
    const { apply, applyMany } = handlerOf(group[0]!.write);
    const ctxOf = (i: Item) => applyContextOf(i.write);
    if (applyMany && group.length > 1) {
      const results = await (applyMany as (tx: Tx, items: { payload: unknown; ctx: ReturnType<typeof ctxOf> }[]) => Promise<unknown[]>)(
        tx,
        group.map((i) => ({ payload: i.write.payload, ctx: ctxOf(i) })),
      );
      if (results.length !== group.length) throw new Error(`${name}: the multi-row handler answered ${results.length} of ${group.length}`);
      group.forEach((item, k) => done.push({ item, result: results[k] }));
    } else {
      for (const item of group) done.push({ item, result: await apply(tx, item.write.payload, ctxOf(item)) });
    }
  }
  if (ordered.length) {
    const { applied, waiting } = await applyOrdered(tx, ordered);
    done.push(...applied);
    for (const { item, error } of waiting) out.set(item.index, { ok: false, error });
  }

  if (done.length) await recordCompleted(tx, done.map(({ item, result }) => ({ write: item.write, result })));
  for (const { item, result } of done) out.set(item.index, { ok: true, value: { status: "completed", result } });
  return out;
}

function groupByName(items: Item[]): Map<JobName, Item[]> {
  const groups = new Map<JobName, Item[]>();
  for (const item of items) {
    const group = groups.get(item.write.name);
    if (group) group.push(item);
    else groups.set(item.write.name, [item]);
  }
  return groups;
}

/**
 * Ordered edits: every product's lock in one statement, every product's applied
 * sequence in one read, then the edits by product and sequence. An edit whose
 * predecessor is in the same batch applies right after it.
 */
async function applyOrdered(tx: Tx, items: Item[]) {
  const keyOf = (i: Item) => orderKeyOf(i.write)!;
  const ids = items.map(keyOf);
  await lockProducts(tx, ids);
  const appliedSeq = await appliedSeqs(tx, ids);
  const moved = new Map<number, number>();
  const applied: { item: Item; result: unknown }[] = [];
  const waiting: { item: Item; error: PredecessorPendingError }[] = [];
  const inOrder = [...items].sort((a, b) => keyOf(a) - keyOf(b) || (a.write.seq ?? 0) - (b.write.seq ?? 0));

  for (const item of inOrder) {
    const productId = keyOf(item);
    const { seq } = item.write;
    if (seq === undefined) throw new PermanentJobError("INVALID_PAYLOAD", "ordered edit without a sequence number");
    let turn;
    try {
      turn = orderTurn(item.write, appliedSeq.get(productId));
    } catch (err) {
      if (!(err instanceof PredecessorPendingError)) throw err;
      waiting.push({ item, error: err });
      continue;
    }
    if (turn === "superseded") {
      applied.push({ item, result: supersededResult(item.write) });
      continue;
    }
    const result = await handlerOf(item.write).apply(tx, item.write.payload, applyContextOf(item.write));
    applied.push({ item, result });
    appliedSeq.set(productId, seq);
    moved.set(productId, seq);
  }
  await setAppliedSeqs(tx, [...moved].map(([productId, seq]) => ({ productId, seq })));
  return { applied, waiting };
}
