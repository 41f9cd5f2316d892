import type { Db } from "@ingest/db";
import type { JobName, PayloadOf, ResultOf } from "@ingest/jobs";

export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0];

export type ApplyContext = { jobId: string; requestId?: string };

/** Applies one job's effect inside the caller's transaction; no commits here. */
export type Handler<N extends JobName> = (tx: Tx, payload: PayloadOf<N>, ctx: ApplyContext) => Promise<ResultOf<N>>;

/** Every job name must have a handler: a missing one is a compile error. */
export type HandlerMap = { [N in JobName]: Handler<N> };
