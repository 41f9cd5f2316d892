// Coalesces work items that arrive close together into one call, settling each item's
// own promise from that call's per-item answer: one item's failure is only its own.

export type Settled<R> = { ok: true; value: R } | { ok: false; error: unknown };

export type BatcherOptions<T, R> = {
  /** A batch reaching this many items goes at once. */
  maxSize: number;
  /** How long the first item of a batch waits for company; 0 means the end of this event-loop turn. */
  maxWaitMs: number;
  /**
   * Handles one batch; answers one settlement per item, in the items' order: known at
   * once, or a promise of one (never rejecting) for an item answered later.
   */
  run: (items: T[]) => Promise<(Settled<R> | Promise<Settled<R>>)[]>;
};

export type Batcher<T, R> = {
  submit(item: T): Promise<R>;
  /** Sends whatever is waiting now. */
  flush(): void;
  /** Items waiting for their batch to start. */
  readonly waiting: number;
};

type Entry<T, R> = { item: T; resolve: (value: R) => void; reject: (error: unknown) => void };

export function createBatcher<T, R>({ maxSize, maxWaitMs, run }: BatcherOptions<T, R>): Batcher<T, R> {
  let buffer: Entry<T, R>[] = [];
  let timer: NodeJS.Timeout | NodeJS.Immediate | undefined;

  const cancelTimer = () => {
    if (timer === undefined) return;
    if (maxWaitMs === 0) clearImmediate(timer as NodeJS.Immediate);
    else clearTimeout(timer as NodeJS.Timeout);
    timer = undefined;
  };

  const flush = () => {
    cancelTimer();
    if (buffer.length === 0) return;
    const batch = buffer;
    buffer = [];
    let answered: Promise<(Settled<R> | Promise<Settled<R>>)[]>;
    try {
      answered = run(batch.map((e) => e.item));
    } catch (err) {
      answered = Promise.reject(err);
    }
    answered.then(
      (settled) => {
        const answer = (entry: Entry<T, R>, s: Settled<R>) => (s.ok ? entry.resolve(s.value) : entry.reject(s.error));
        batch.forEach((entry, i) => {
          const s = settled[i];
          if (!s) entry.reject(new Error("batch answered fewer items than it was given"));
          else if (s instanceof Promise) s.then((later) => answer(entry, later), entry.reject);
          else answer(entry, s);
        });
      },
      (err) => {
        for (const entry of batch) entry.reject(err);
      },
    );
  };

  return {
    submit(item) {
      return new Promise<R>((resolve, reject) => {
        buffer.push({ item, resolve, reject });
        if (buffer.length >= maxSize) flush();
        else if (timer === undefined) timer = maxWaitMs === 0 ? setImmediate(flush) : setTimeout(flush, maxWaitMs);
      });
    },
    flush,
    get waiting() {
      return buffer.length;
    },
  };
}

/** Turns a promise into a settlement, never rejecting. */
export function settle<R>(promise: Promise<R>): Promise<Settled<R>> {
  return promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}
