// A promise's outcome as a value, for answering many callers from one piece of work.

export type Settled<R> = { ok: true; value: R } | { ok: false; error: unknown };

/** Turns a promise into a settlement, never rejecting. */
export function settle<R>(promise: Promise<R>): Promise<Settled<R>> {
  return promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}
