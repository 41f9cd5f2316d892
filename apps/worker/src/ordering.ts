// Order per product: each edit carries the sequence number it took at acceptance and the
// number and id of the edit accepted just before it. An edit applies only after that
// one (checked under the product's advisory lock against product_versions); an edit
// older than the one applied is skipped, so an older edit never overwrites a newer one.
import { productVersions, type Db } from "@ingest/db";
import { carrierJobId, orderKeyOf, queueOfJobId, writesOf, type Queues } from "@ingest/jobs";
import type { Job } from "bullmq";
import { inArray, sql } from "drizzle-orm";
import { PredecessorPendingError } from "./errors.js";
import type { Tx } from "./handlers/index.js";
import type { WriteEnvelope } from "./write.js";

// Namespace of the transaction-scoped advisory locks that serialise edits per product.
const PRODUCT_LOCK_NAMESPACE = 1;

/** Takes the products' locks in one statement, in ascending order, so racing batches cannot deadlock. */
export async function lockProducts(tx: Tx, productIds: number[]): Promise<void> {
  const ids = [...new Set(productIds)].sort((a, b) => a - b);
  if (ids.length === 1) {
    await tx.execute(sql`select pg_advisory_xact_lock(${PRODUCT_LOCK_NAMESPACE}, ${ids[0]!})`);
    return;
  }
  await tx.execute(sql`
    select count(pg_advisory_xact_lock(${PRODUCT_LOCK_NAMESPACE}::int, id::int))
    from jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb) as t(id)`);
}

/** Each product's last applied sequence number, for those that have one. */
export async function appliedSeqs(tx: Tx | Db, productIds: number[]): Promise<Map<number, number>> {
  const rows = await tx
    .select({ productId: productVersions.productId, seq: productVersions.seq })
    .from(productVersions)
    .where(inArray(productVersions.productId, [...new Set(productIds)]));
  return new Map(rows.map((r) => [r.productId, r.seq]));
}

/** Moves each product's applied sequence forward (never back). */
export async function setAppliedSeqs(tx: Tx, rows: { productId: number; seq: number }[]): Promise<void> {
  if (rows.length === 0) return;
  await tx
    .insert(productVersions)
    .values(rows)
    .onConflictDoUpdate({
      target: productVersions.productId,
      set: { seq: sql`greatest(${productVersions.seq}, excluded.seq)`, updatedAt: sql`now()` },
    });
}

/** Marks the turns of these edits as taken (applied, skipped or failed for good): their successors may go. */
export async function moveSequencesPast(tx: Tx, writes: WriteEnvelope[]): Promise<void> {
  const last = new Map<number, number>();
  for (const w of writes) {
    const productId = orderKeyOf(w);
    if (productId === undefined || typeof w.seq !== "number") continue;
    last.set(productId, Math.max(w.seq, last.get(productId) ?? -Infinity));
  }
  await setAppliedSeqs(tx, [...last].map(([productId, seq]) => ({ productId, seq })));
}

/**
 * Whether an ordered edit applies now, given its product's last applied sequence: an
 * edit older than the one in place is superseded (it must not overwrite it); one whose
 * predecessor has not been applied waits (throws PredecessorPendingError), unless told
 * to go without it (its predecessor is gone for good).
 */
export function orderTurn(write: WriteEnvelope, applied: number | undefined, ignorePredecessor = false): "apply" | "superseded" {
  const { seq } = write;
  if (seq === undefined) throw new Error("orderTurn: an ordered edit without a sequence number");
  if (applied !== undefined && applied >= seq) return "superseded";
  if (!predecessorSettled(write, applied) && !ignorePredecessor) throw new PredecessorPendingError(write.prevJobId);
  return "apply";
}

/** Whether the edit before this one has had its turn, given its product's last applied sequence. */
export function predecessorSettled(write: WriteEnvelope, applied: number | undefined): boolean {
  const { prevSeq = null } = write;
  return prevSeq === null || (applied !== undefined && applied >= prevSeq);
}

// A predecessor that is not in Redis yet may still be on its way (its carrier can land a
// moment after ours); after this long it certainly never will.
const PREDECESSOR_GRACE_MS = 15_000;
const FINISHED = new Set(["completed", "failed", "unknown"]);

export type PredecessorDeps = { queues: Queues; orderWaitMaxMs: number };

/** Where an edit's predecessor is: applying somewhere now, queued in Redis, or gone for good. */
export type Predecessor = "active" | "queued" | "gone";

/**
 * Where an edit's predecessor is: the job that carries it (a carrier, a bulk batch, or
 * its own job) is running or queued, or a write of a finished carrier was spilled to a
 * job of its own that is; or it is not in Redis yet but was accepted only a moment ago
 * (queued). Past orderWaitMaxMs nothing is waited for. A predecessor queued in Redis
 * (parked, or behind later jobs) is brought to the head of its queue, with the queued
 * edits it waits for ahead of it: every later edit of its product waits for them, and
 * would otherwise fill the workers' slots waiting while they queue behind them. A caller
 * that looks again and again (a write waiting in its worker) walks the chain once.
 */
export async function predecessorState(deps: PredecessorDeps, acceptedAt: number, prevJobId: string | undefined, walk = true): Promise<Predecessor> {
  if (Date.now() - acceptedAt > deps.orderWaitMaxMs || !prevJobId) return "gone";
  const carrierId = carrierJobId(prevJobId);
  const queue = queueOfJobId(carrierId);
  if (!queue) return "gone";
  const carrier = await deps.queues[queue].getJob(carrierId);
  if (!carrier) return Date.now() - acceptedAt < PREDECESSOR_GRACE_MS ? "queued" : "gone";
  const state = await carrier.getState();
  if (!FINISHED.has(state)) return placed(deps, carrier, state, prevJobId, walk);
  if (carrierId === prevJobId || !writesOf(carrier)) return "gone";
  // The carrier finished: its writes that failed for good were spilled before that.
  const spilled = await deps.queues[queue].getJob(prevJobId);
  if (!spilled) return "gone";
  const spilledState = await spilled.getState();
  return FINISHED.has(spilledState) ? "gone" : placed(deps, spilled, spilledState, prevJobId, walk);
}

async function placed(deps: PredecessorDeps, job: Job, state: string, writeId: string, walk: boolean): Promise<Predecessor> {
  if (state === "active") return "active";
  await (walk ? bringChainForward(deps, job, state, writeId) : bringForward(job, state));
  return "queued";
}

// How far back along a product's queued edits one look brings them forward.
const CHAIN_WALK_MAX = 50;

/**
 * Brings a queued predecessor to the head of its queue and, ahead of it, the queued
 * edits it waits for in turn (up to CHAIN_WALK_MAX), the earliest at the very head: after
 * a fault has shuffled a product's backlog, the edit that can apply next is found in one
 * look, and the ones after it follow in order, instead of one fetch per edit walking back.
 */
async function bringChainForward(deps: PredecessorDeps, job: Job, state: string, writeId: string): Promise<void> {
  const chain: [Job, string][] = [[job, state]];
  for (let current = job, id = writeId; chain.length <= CHAIN_WALK_MAX; ) {
    const prevJobId = writesOf(current)?.find((w) => w.id === id)?.prevJobId;
    if (!prevJobId) break;
    const queue = queueOfJobId(carrierJobId(prevJobId));
    const prev = queue && (await deps.queues[queue].getJob(carrierJobId(prevJobId)));
    if (!prev) break;
    const prevState = await prev.getState();
    if (prevState !== "waiting" && prevState !== "delayed") break;
    chain.push([prev, prevState]);
    current = prev;
    id = prevJobId;
  }
  // Each goes to the head in turn: the last brought, the earliest edit, runs first.
  for (const [j, s] of chain) await bringForward(j, s);
}

/** A job delayed or waiting goes to the head of its queue (promoted if delayed); any other is left where it is. */
export async function bringForward(job: Job, state: string): Promise<void> {
  if (state !== "delayed" && state !== "waiting") return;
  try {
    if (state === "delayed") await job.promote();
    await job.changePriority({ lifo: true });
  } catch {
    // It moved on meanwhile (taken, or promoted by another): nothing to bring forward.
  }
}

/**
 * Wakes the writes of this process waiting for earlier edits when those are settled:
 * here, or in another process that announces it (successors.ts). A write that hears
 * nothing looks again after its pause.
 */
export function createTurnSignal() {
  const waiting = new Map<() => void, Set<string>>();
  return {
    /** Resolves once any of the awaited writes is settled, or after ms. */
    wait(ms: number, awaited: string[]): Promise<void> {
      return new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          waiting.delete(done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        waiting.set(done, new Set(awaited));
      });
    },
    /** These writes are settled (applied, skipped or failed for good): their successors may go. */
    settled(ids: string[]): void {
      for (const [wake, awaited] of [...waiting]) if (ids.some((id) => awaited.has(id))) wake();
    },
  };
}
export type TurnSignal = ReturnType<typeof createTurnSignal>;
