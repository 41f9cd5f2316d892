import { jobLedger, productVersions, type Db } from "@ingest/db";
import { createBatcher, settle, type Settled } from "@ingest/config";
import { check, JOBS, type PayloadOf } from "@ingest/jobs";
import { inArray, sql } from "drizzle-orm";
import {
  applyJob,
  orderTurn,
  outcomeOf,
  PRODUCT_LOCK_NAMESPACE,
  recordCompleted,
  setAppliedSeqs,
  supersededResult,
  type JobEnvelope,
  type Outcome,
} from "./apply.js";
import { PermanentJobError, PredecessorPendingError } from "./errors.js";
import { createRegistrations, HANDLERS, type Tx } from "./handlers/index.js";

type Item = { index: number; job: JobEnvelope; payload: unknown };

export type BatchReport = {
  /** One per job, in order: known now, or (jobs applied one by one) as each finishes. */
  settled: (Settled<Outcome> | Promise<Settled<Outcome>>)[];
  /** The batch could not commit as a whole and its jobs were applied one by one. */
  fellBack: boolean;
};

/**
 * Applies the jobs of one queue in one transaction: one commit, multi-row inserts for
 * registrations and for the ledger rows, the products' order locks taken together.
 * Exactly-once holds as in applyJob: every job's ledger row commits with its effect.
 * When anything in the batch fails (a job that fails permanently, a ledger row another
 * delivery committed first, a lock held too long, a deadlock), the transaction rolls
 * back and the jobs are applied one by one, so a bad job fails alone and its
 * neighbours still commit. An edit whose predecessor is not applied yet settles with
 * PredecessorPendingError, as in applyJob.
 */
export async function applyBatch(db: Db, jobs: JobEnvelope[]): Promise<BatchReport> {
  const settled: BatchReport["settled"] = new Array(jobs.length);
  const items: Item[] = [];
  const oneByOne: number[] = [];
  jobs.forEach((job, index) => {
    const checked = check(JOBS[job.name].payload, job.data.payload);
    // Invalid payloads are recorded as failures by the one-by-one path.
    if (checked.ok) items.push({ index, job, payload: checked.value });
    else oneByOne.push(index);
  });
  let fellBack = false;
  if (items.length === 1) oneByOne.push(items[0]!.index);
  else if (items.length > 1) {
    try {
      const outcomes = await db.transaction(async (tx) => {
        // A job stuck on a lock (another delivery of it still running) must not hold
        // its neighbours for long: the batch gives up and they go one by one.
        await tx.execute(sql.raw(`set local lock_timeout = ${BATCH_LOCK_TIMEOUT_MS}`));
        return applyAllInTx(tx, items);
      });
      for (const [index, s] of outcomes) settled[index] = s;
    } catch {
      fellBack = true;
      oneByOne.push(...items.map((i) => i.index));
    }
  }
  if (oneByOne.length) applyOneByOne(db, jobs, oneByOne, settled);
  return { settled, fellBack };
}

const BATCH_LOCK_TIMEOUT_MS = 1_000;

/**
 * Each job in its own transaction, each answered as soon as it is done. A product's
 * edits go one after another in sequence order (a predecessor in the same batch first);
 * everything else runs side by side, so a job that blocks holds up only the edits of
 * its product queued behind it.
 */
function applyOneByOne(db: Db, jobs: JobEnvelope[], indices: number[], settled: BatchReport["settled"]): void {
  const tails = new Map<string, Promise<unknown>>();
  const chainOf = (index: number): string => {
    const job = jobs[index]!;
    const productId = (job.data.payload as { productId?: unknown } | null)?.productId;
    return JOBS[job.name].ordered && Number.isInteger(productId) ? `product:${productId}` : `job:${index}`;
  };
  const ordered = [...indices].sort((a, b) => (jobs[a]!.data.seq ?? 0) - (jobs[b]!.data.seq ?? 0) || a - b);
  for (const index of ordered) {
    const key = chainOf(index);
    const run = (tails.get(key) ?? Promise.resolve()).then(() => settle(applyJob(db, jobs[index]!)));
    tails.set(key, run);
    settled[index] = run;
  }
}

async function applyAllInTx(tx: Tx, items: Item[]): Promise<Map<number, Settled<Outcome>>> {
  const out = new Map<number, Settled<Outcome>>();

  // Retries and redeliveries that already committed answer from the ledger.
  const redelivered = items.filter((i) => i.job.redelivered).map((i) => i.job.id);
  if (redelivered.length) {
    const prior = await tx.select().from(jobLedger).where(inArray(jobLedger.jobId, redelivered));
    const byId = new Map(prior.map((row) => [row.jobId, outcomeOf(row)]));
    for (const i of items) {
      const outcome = byId.get(i.job.id);
      if (outcome) out.set(i.index, { ok: true, value: outcome });
    }
  }
  const todo = items.filter((i) => !out.has(i.index));

  const done: { item: Item; result: unknown }[] = [];
  const registrations = todo.filter((i) => i.job.name === "registration.create");
  if (registrations.length) {
    const results = await createRegistrations(
      tx,
      registrations.map((i) => ({ payload: i.payload as PayloadOf<"registration.create">, jobId: i.job.id, requestId: i.job.data.requestId })),
    );
    registrations.forEach((item, k) => done.push({ item, result: results[k] }));
  }
  const ordered = todo.filter((i) => JOBS[i.job.name].ordered);
  if (ordered.length) {
    const { applied, waiting } = await applyOrdered(tx, ordered);
    done.push(...applied);
    for (const { item, error } of waiting) out.set(item.index, { ok: false, error });
  }
  for (const item of todo) {
    if (item.job.name === "registration.create" || JOBS[item.job.name].ordered) continue;
    const handler = HANDLERS[item.job.name] as (tx: Tx, payload: unknown, ctx: { jobId: string }) => Promise<unknown>;
    done.push({ item, result: await handler(tx, item.payload, { jobId: item.job.id }) });
  }

  if (done.length) await recordCompleted(tx, done.map(({ item, result }) => ({ job: item.job, result })));
  for (const { item, result } of done) out.set(item.index, { ok: true, value: { status: "completed", result } });
  return out;
}

const productIdOf = (i: Item) => (i.payload as { productId: number }).productId;

/** Unordered jobs as they came, then edits by product and sequence: the order they must apply in. */
function inApplyOrder(items: Item[]): Item[] {
  return [...items].sort((a, b) => {
    const ao = JOBS[a.job.name].ordered;
    const bo = JOBS[b.job.name].ordered;
    if (ao !== bo) return ao ? 1 : -1;
    if (!ao) return a.index - b.index;
    return productIdOf(a) - productIdOf(b) || (a.job.data.seq ?? 0) - (b.job.data.seq ?? 0);
  });
}

/**
 * Ordered edits: every product's lock in one statement, in ascending id order (so
 * batches racing for the same products cannot deadlock), every product's applied
 * sequence in one read, then the edits in sequence order. An edit whose predecessor
 * is in the same batch applies right after it.
 */
async function applyOrdered(tx: Tx, items: Item[]) {
  const ids = [...new Set(items.map(productIdOf))].sort((a, b) => a - b);
  await tx.execute(sql`
    select count(pg_advisory_xact_lock(${PRODUCT_LOCK_NAMESPACE}::int, id::int))
    from jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb) as t(id)`);
  const versions = await tx
    .select({ productId: productVersions.productId, seq: productVersions.seq })
    .from(productVersions)
    .where(inArray(productVersions.productId, ids));
  const appliedSeq = new Map(versions.map((v) => [v.productId, v.seq]));
  const moved = new Map<number, number>();
  const applied: { item: Item; result: unknown }[] = [];
  const waiting: { item: Item; error: PredecessorPendingError }[] = [];

  for (const item of inApplyOrder(items)) {
    const productId = productIdOf(item);
    const { seq, prevSeq = null } = item.job.data;
    if (seq === undefined) throw new PermanentJobError("INVALID_PAYLOAD", "ordered edit without a sequence number");
    let turn;
    try {
      turn = orderTurn(item.job, seq, prevSeq, appliedSeq.get(productId));
    } catch (err) {
      if (!(err instanceof PredecessorPendingError)) throw err;
      waiting.push({ item, error: err });
      continue;
    }
    if (turn === "superseded") {
      applied.push({ item, result: supersededResult(item.job.name, productId) });
      continue;
    }
    const handler = HANDLERS[item.job.name] as (tx: Tx, payload: unknown, ctx: { jobId: string }) => Promise<unknown>;
    applied.push({ item, result: await handler(tx, item.payload, { jobId: item.job.id }) });
    appliedSeq.set(productId, seq);
    moved.set(productId, seq);
  }
  if (moved.size) await setAppliedSeqs(tx, [...moved].map(([productId, seq]) => ({ productId, seq })));
  return { applied, waiting };
}

export type Applier = (job: JobEnvelope) => Promise<Outcome>;

/**
 * How the worker applies jobs: in micro-batches of up to batchSize jobs, gathered for
 * at most waitMs after the first one arrives (one per queue: a batch holds one queue's
 * jobs), or one by one when batchSize is 1.
 */
export function createApplier(
  db: Db,
  { batchSize, waitMs, onBatch }: { batchSize: number; waitMs: number; onBatch?: (size: number, fellBack: boolean) => void },
): Applier {
  if (batchSize <= 1) return (job) => applyJob(db, job);
  const batcher = createBatcher<JobEnvelope, Outcome>({
    maxSize: batchSize,
    maxWaitMs: waitMs,
    run: async (jobs) => {
      const { settled, fellBack } = await applyBatch(db, jobs);
      onBatch?.(jobs.length, fellBack);
      return settled;
    },
  });
  return (job) => batcher.submit(job);
}
