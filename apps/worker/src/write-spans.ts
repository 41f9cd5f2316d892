// One span per write of a carrier job (or line of a bulk batch), so a write applied inside
// a batch is still found by its id and in the trace of the request that made it: the span
// is a child of the trace context the write carries (a bulk line carries none: its span is
// a child of the batch's process span, which continues the request's trace) and links to
// the carrier's process span (BullMQ's).
import { activeTraceCarrier, context, endSpan, ROOT_CONTEXT, startItemSpan, trace, tracingEnabled, type Span } from "@ingest/telemetry";
import type { QueueName } from "@ingest/jobs";
import type { Outcome, WriteEnvelope } from "./write.js";

type WriteSpans = {
  /** Ends a write's span with its outcome. */
  settled(write: WriteEnvelope, outcome: Outcome): void;
  /** Ends the spans of writes without an outcome: the job failed (an error) or parked them (not one). */
  unsettled(reason: unknown, failed?: boolean): void;
  /**
   * A chunk of one write runs in its span, so its statements join the write's trace;
   * a chunk of many runs in the carrier's span, which the writes' spans link to.
   */
  inChunk<T>(writes: WriteEnvelope[], fn: () => Promise<T>): Promise<T>;
};

/** Undefined when tracing is off. Each envelope's trace becomes its span's, for what follows it (the welcome email). */
export function traceWrites(queue: QueueName, carrierId: string | undefined, writes: WriteEnvelope[]): WriteSpans | undefined {
  if (!tracingEnabled()) return undefined;
  const spans = new Map<WriteEnvelope, Span>();
  for (const write of writes) {
    const span = startItemSpan(`${write.name} process`, write.trace, {
      "messaging.system": "bullmq",
      "messaging.operation.type": "process",
      "messaging.destination.name": queue,
      "messaging.message.id": write.id,
      ...(carrierId && carrierId !== write.id ? { "ingest.carrier_id": carrierId } : {}),
      ...(write.requestId ? { "ingest.request_id": write.requestId } : {}),
    });
    spans.set(write, span);
    const carried = activeTraceCarrier(trace.setSpan(ROOT_CONTEXT, span));
    if (carried) write.trace = carried;
  }
  return {
    settled(write, outcome) {
      const span = spans.get(write);
      if (!span) return;
      spans.delete(write);
      if (outcome.status === "completed") endSpan(span);
      else endSpan(span, `${outcome.code}: ${outcome.message}`);
    },
    unsettled(reason, failed = true) {
      for (const span of spans.values()) {
        if (failed) endSpan(span, reason instanceof Error ? reason : String(reason));
        else endSpan(span.setAttribute("ingest.parked", String(reason)));
      }
      spans.clear();
    },
    inChunk(chunk, fn) {
      const span = chunk.length === 1 ? spans.get(chunk[0]!) : undefined;
      return span ? context.with(trace.setSpan(context.active(), span), fn) : fn();
    },
  };
}
