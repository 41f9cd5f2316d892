// What the worker knows about applying each kind of write.
import type { Db } from "@ingest/db";
import type { JobName, PayloadOf, ResultOf, Write } from "@ingest/jobs";

export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

/** What a handler records about the write beside its payload: its id, request id and trace context. */
export type ApplyContext = { jobId: string; requestId?: string | undefined; trace?: Write["trace"] };

export const applyContextOf = (write: Pick<Write, "id" | "requestId" | "trace">): ApplyContext => ({ jobId: write.id, requestId: write.requestId, trace: write.trace });

/** Applies one write's effect inside the caller's transaction; no commits here. */
export type Handler<N extends JobName> = (tx: Tx, payload: PayloadOf<N>, ctx: ApplyContext) => Promise<ResultOf<N>>;

/** A write for a handler that records its own ledger rows: what the ledger row needs besides the result. */
export type RecordItem<P> = { payload: P; ctx: ApplyContext; ledger: { queue: string; attempts: number; acceptedAt: number } };

export type WriteHandler<N extends JobName> = {
  apply: Handler<N>;
  /** The multi-row form, where there is one: many writes in a few statements, results in their order. */
  applyMany?: (tx: Tx, items: { payload: PayloadOf<N>; ctx: ApplyContext }[]) => Promise<ResultOf<N>[]>;
  /**
   * First deliveries applied AND recorded in the ledger in one statement, no transaction
   * (the fast path): a result per write, undefined for one to apply on its own; throws
   * (nothing kept) when it cannot do them together.
   */
  recordMany?: (db: Db, items: RecordItem<PayloadOf<N>>[]) => Promise<(ResultOf<N> | undefined)[]>;
  /** Ordered edits: what one answers when a newer edit of its product was applied first (it is skipped). */
  superseded?: (payload: PayloadOf<N>) => ResultOf<N>;
};

/** Every job name must have a handler: a missing one is a compile error. */
export type HandlerMap = { [N in JobName]: WriteHandler<N> };
