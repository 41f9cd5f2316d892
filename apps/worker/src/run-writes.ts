// The loop every lane that applies writes shares (carriers, single write jobs, bulk
// batches): writes in chunks, each chunk one transaction, edits that must wait for an
// earlier edit of their product waiting, each write's outcome reported as it is known.
import type { Db } from "@ingest/db";
import { applyWrite } from "./apply-write.js";
import { applyWrites } from "./apply-writes.js";
import { PredecessorPendingError } from "./errors.js";
import { predecessorState, type PredecessorDeps, type TurnSignal } from "./ordering.js";
import { markAwaited, wakeSuccessors } from "./successors.js";
import type { Outcome, WriteEnvelope } from "./write.js";

export type RunDeps = PredecessorDeps & {
  db: Db;
  turns: TurnSignal;
  /** Writes per transaction. */
  chunkSize: number;
  /**
   * How long a chunk's edits wait here for earlier edits of their products before they
   * are handed back (runWrites answers them): a job that waits must not hold its worker's
   * slot for long, or a queue full of waiting edits would starve the edits they wait for.
   * With a budget, edits whose predecessors are all queued (none being applied) are
   * handed back at once; without one, nothing is ever handed back.
   */
  waitBudgetMs?: number;
  onBatch?: (size: number, fellBack: boolean) => void;
  onOrderWait?: () => void;
  /** Runs a chunk's statements in the context it chooses (the trace of a lone write). */
  inChunk?: <T>(writes: WriteEnvelope[], fn: () => Promise<T>) => Promise<T>;
};

/** Called once per write with its final outcome, in the order they become known. */
type OnOutcome = (index: number, write: WriteEnvelope, outcome: Outcome) => void | Promise<void>;

// How long a write waiting for its predecessor sleeps between looks, at first and at most
// (a commit of an edit in this process wakes it at once).
const FIRST_PAUSE_MS = 5;
const MAX_PAUSE_MS = 250;

/**
 * Applies the writes a chunk at a time. A write whose predecessor is still pending waits
 * for it while the rest of its chunk goes on, up to the wait budget; one whose
 * predecessor is gone for good applies without it. Answers the writes still waiting when
 * the budget ran out. A transient failure is thrown once the chunk's other writes are
 * reported (the job retries, and writes applied answer from the ledger then).
 * afterChunk runs once each chunk's writes are all reported.
 */
export async function runWrites(
  deps: RunDeps,
  jobId: string,
  writes: WriteEnvelope[],
  onOutcome: OnOutcome,
  afterChunk?: (done: number) => Promise<void>,
): Promise<WriteEnvelope[]> {
  const waiting: WriteEnvelope[] = [];
  const deadline = performance.now() + (deps.waitBudgetMs ?? Infinity);
  for (let start = 0; start < writes.length; start += deps.chunkSize) {
    const chunk = writes.slice(start, start + deps.chunkSize).map((write, k) => ({ index: start + k, write }));
    waiting.push(...(await runChunk(deps, jobId, chunk, onOutcome, deadline)));
    await afterChunk?.(Math.min(start + deps.chunkSize, writes.length));
  }
  return waiting;
}

/** The edits waiting for these writes may go: those waiting in this process at once, the others told (successors.ts). */
async function settledTurns(deps: RunDeps, settled: WriteEnvelope[]): Promise<void> {
  deps.turns.settled(settled.map((w) => w.id));
  await wakeSuccessors(deps.queues, settled);
}

type Indexed = { index: number; write: WriteEnvelope };

async function runChunk(deps: RunDeps, jobId: string, chunk: Indexed[], onOutcome: OnOutcome, deadline: number): Promise<WriteEnvelope[]> {
  let todo = chunk;
  let failure: unknown;
  // The writes that wait only ever become fewer from one look to the next: the first
  // look brings their queued chains forward and marks their waits in Redis for good.
  let firstLook = true;
  for (let pause = FIRST_PAUSE_MS; todo.length; pause = Math.min(pause * 2, MAX_PAUSE_MS)) {
    const writes = todo.map((t) => t.write);
    const report = await (deps.inChunk ? deps.inChunk(writes, () => applyWrites(deps.db, writes)) : applyWrites(deps.db, writes));
    deps.onBatch?.(todo.length, report.fellBack);
    const settled = await Promise.all(report.settled);
    const waiting: Indexed[] = [];
    const done: WriteEnvelope[] = [];
    for (const [k, s] of settled.entries()) {
      const t = todo[k]!;
      if (s.ok) {
        done.push(t.write);
        await onOutcome(t.index, t.write, s.value);
      } else if (s.error instanceof PredecessorPendingError) waiting.push(t);
      else failure ??= s.error;
    }
    if (done.length) await settledTurns(deps, done);
    if (failure !== undefined) throw failure;
    if (!waiting.length) return [];

    const where = await Promise.all(waiting.map((t) => predecessorState(deps, t.write.timestamp, t.write.prevJobId, firstLook)));
    // Their predecessors are gone for good: in sequence order, without them.
    const gone = waiting.filter((_, k) => where[k] === "gone").sort((a, b) => (a.write.seq ?? 0) - (b.write.seq ?? 0));
    for (const t of gone) await onOutcome(t.index, t.write, await applyWrite(deps.db, t.write, { ignorePredecessor: true }));
    if (gone.length) await settledTurns(deps, gone.map((t) => t.write));
    todo = waiting.filter((_, k) => where[k] !== "gone");
    if (todo.length) {
      deps.onOrderWait?.();
      const left = deadline - performance.now();
      // Waiting here helps only while a predecessor is being applied; one queued in Redis
      // (brought to the head of its queue) needs this slot more than its successors do.
      // A lane without a wait budget cannot step aside (the bulk lane): it waits on.
      const stepAside = deps.waitBudgetMs !== undefined && where.every((w) => w !== "active");
      if (left <= 0 || stepAside) return todo.map((t) => t.write);
      // Where a predecessor settled in another process tells that this job waits for it.
      if (firstLook) await markAwaited(deps, jobId, todo.map((t) => t.write));
      firstLook = false;
      await deps.turns.wait(Math.min(pause, left), todo.flatMap((t) => (t.write.prevJobId ? [t.write.prevJobId] : [])));
    }
  }
  return [];
}
