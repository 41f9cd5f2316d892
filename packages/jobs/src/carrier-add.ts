// Gathers the writes a process accepts close together into carrier jobs (writes.ts),
// one BullMQ add per carrier, and tells each write when its carrier is stored.
import { randomUUID } from "node:crypto";
import { withTimeout } from "@ingest/runtime";
import { context, inSpan, linkTo, ROOT_CONTEXT, SpanKind, tracer, tracingEnabled } from "@ingest/telemetry";
import type { Queue } from "bullmq";
import { writeIdOf, WRITES_JOB, type Write, type WritesJobData } from "./writes.js";

/**
 * A write's place in a carrier, taken before the write is complete: its id is known at
 * once (the idempotency record and the product's sequence record it before the write
 * joins). The carrier is stored only once each of its places is filled or cancelled.
 */
export type CarrierSlot = {
  readonly id: string;
  /** Resolves once the carrier holding the write is stored (and afterAdd passed). */
  fill(write: Write): Promise<void>;
  cancel(): void;
};

export type CarrierAdderOptions = {
  /** The carrier ids' prefix (the queue's job id prefix). */
  idPrefix: string;
  timeoutMs: number;
  /** A carrier holds at most this many writes, and about this many bytes of them. */
  maxWrites: number;
  maxBytes: number;
  /**
   * A carrier closes at the end of an event-loop turn once it holds minWrites writes
   * (under load, one turn brings them); with fewer it stays open for more until lingerMs
   * after its first write, so that far from saturation writes still share a job. With
   * lingerMs 0 it closes at the end of the turn it was opened in, however few it holds.
   */
  lingerMs: number;
  minWrites?: number;
  /** Runs once the carrier is stored; if it throws, the carrier's writes are not accepted. */
  afterAdd?: () => Promise<void>;
  /** Each carrier stored, with its number of writes. */
  onAdded?: (writes: number) => void;
};

type Waiter = { resolve: () => void; reject: (err: unknown) => void };

export type CarrierAdder = { reserve(bytes?: number): CarrierSlot };

export function createCarrierAdder(queue: Pick<Queue, "add">, opts: CarrierAdderOptions): CarrierAdder {
  let open: Carrier | undefined;

  class Carrier {
    readonly id = `${opts.idPrefix}-${randomUUID()}`;
    private readonly writes: Write[] = [];
    private readonly waiters: Waiter[] = [];
    private places = 0;
    private unsettled = 0;
    bytes = 0;
    private closed = false;
    private timer: NodeJS.Timeout | undefined;
    private turn: NodeJS.Immediate | undefined;

    constructor() {
      this.turn = setImmediate(() => this.endOfTurn());
      if (opts.lingerMs > 0) this.timer = setTimeout(() => this.close(), opts.lingerMs);
    }

    private endOfTurn() {
      this.turn = undefined;
      if (opts.lingerMs === 0 || this.places >= (opts.minWrites ?? 1)) this.close();
    }

    get full() {
      return this.places >= opts.maxWrites || this.bytes >= opts.maxBytes;
    }

    take(bytes: number): CarrierSlot {
      const id = writeIdOf(this.id, this.places++);
      this.unsettled++;
      this.bytes += bytes;
      let settled = false;
      const settle = () => {
        if (settled) throw new Error(`carrier place ${id} settled twice`);
        settled = true;
        this.unsettled--;
      };
      const slot: CarrierSlot = {
        id,
        fill: (write) =>
          new Promise<void>((resolve, reject) => {
            settle();
            this.writes.push(write);
            this.waiters.push({ resolve, reject });
            this.sendWhenComplete();
          }),
        cancel: () => {
          settle();
          this.sendWhenComplete();
        },
      };
      if (this.full) this.close();
      else if (!this.turn && this.places >= (opts.minWrites ?? 1)) this.turn = setImmediate(() => this.endOfTurn());
      return slot;
    }

    close() {
      if (this.closed) return;
      this.closed = true;
      clearTimeout(this.timer);
      if (this.turn) clearImmediate(this.turn);
      if (open === this) open = undefined;
      this.sendWhenComplete();
    }

    private sendWhenComplete() {
      if (!this.closed || this.unsettled > 0 || this.waiters.length === 0) return;
      const waiters = this.waiters.splice(0);
      const writes = this.writes.splice(0);
      const data: WritesJobData = { writes };
      const send = async () => {
        await withTimeout(queue.add(WRITES_JOB, data as never, { jobId: this.id }), opts.timeoutMs, "queue add");
        await opts.afterAdd?.();
      };
      void (tracingEnabled() ? this.tracedSend(writes, send) : send()).then(
        () => {
          opts.onAdded?.(writes.length);
          for (const w of waiters) w.resolve();
        },
        (err: unknown) => {
          for (const w of waiters) w.reject(err);
        },
      );
    }

    /**
     * The carrier's add in a trace of its own (it holds writes of many requests), linked
     * to each write's publish span; BullMQ's telemetry carries it on to the worker.
     */
    private tracedSend(writes: Write[], send: () => Promise<void>): Promise<void> {
      const links = writes.flatMap((w) => linkTo(w.trace, { "messaging.message.id": w.id }) ?? []);
      const span = tracer.startSpan(
        "carrier send",
        { kind: SpanKind.PRODUCER, links, attributes: { "messaging.system": "bullmq", "messaging.message.id": this.id, "messaging.batch.message_count": writes.length } },
        ROOT_CONTEXT,
      );
      return context.with(ROOT_CONTEXT, () => inSpan(span, send));
    }
  }

  return {
    reserve(bytes = 0) {
      // A write too big to share a carrier with the ones waiting goes in the next one.
      if (open && (open.full || (open.bytes > 0 && open.bytes + bytes > opts.maxBytes))) open.close();
      open ??= new Carrier();
      return open.take(bytes);
    },
  };
}
