// Tracing for the write path: the W3C trace context a write or an email carries
// through Redis, the spans of one write inside a batch, and the log fields of the active
// span. All of them cost next to nothing when no SDK was started (no OTLP endpoint).
import { context, isSpanContextValid, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Link, type Span } from "@opentelemetry/api";
import { BullMQOtel } from "bullmq-otel";

export { ROOT_CONTEXT, SpanKind, context, trace, type Span };

/** The W3C trace context (traceparent, tracestate) as a job stores it. */
export type TraceCarrier = { traceparent: string; tracestate?: string };

export const tracer = trace.getTracer("ingest");

// Set by startTracing: the entry and the main module are bundles of their own.
const STARTED = Symbol.for("ingest.tracing.started");

type Env = Record<string, string | undefined>;

/** Whether the standard environment asks for traces: an OTLP endpoint, and the SDK not disabled. */
export function tracingConfigured(env: Env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return false;
  if ((env.OTEL_TRACES_EXPORTER ?? "").split(",").some((e) => e.trim() === "none")) return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

const PROTOCOLS = ["http/protobuf", "http/json", "grpc"];
const SAMPLERS = ["always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"];

/**
 * What is wrong with the OTEL_* values this service reads, when tracing is configured:
 * the SDK would fall back silently, and an operator would look for traces that never come.
 */
function tracingEnvProblems(env: Env): string[] {
  if (!tracingConfigured(env)) return [];
  const problems: string[] = [];
  for (const name of ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"]) {
    const value = env[name]?.trim();
    if (value && !PROTOCOLS.includes(value)) problems.push(`${name} must be one of ${PROTOCOLS.join(", ")}, got "${value}"`);
  }
  for (const name of ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]) {
    const value = env[name]?.trim();
    if (value && !/^https?:\/\/[^/]/.test(value)) problems.push(`${name} must be an http:// or https:// URL, got "${value}"`);
  }
  const sampler = env.OTEL_TRACES_SAMPLER?.trim();
  if (sampler && !SAMPLERS.includes(sampler)) problems.push(`OTEL_TRACES_SAMPLER must be one of ${SAMPLERS.join(", ")}, got "${sampler}"`);
  const arg = env.OTEL_TRACES_SAMPLER_ARG?.trim();
  if (arg && sampler?.endsWith("traceidratio") && !(Number(arg) >= 0 && Number(arg) <= 1)) {
    problems.push(`OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1, got "${arg}"`);
  }
  return problems;
}

/**
 * An app's entry: checks the OTEL_* values (a bad one stops the process with its name),
 * loads the tracing module when an endpoint is configured, then the main module, so that
 * the instrumentations see every module the main one imports.
 */
export async function bootWithTracing(env: Env, tracingModule: URL, mainModule: URL): Promise<void> {
  const problems = tracingEnvProblems(env);
  if (problems.length) {
    console.error(`invalid configuration:\n  ${problems.join("\n  ")}`);
    process.exit(1);
  }
  if (tracingConfigured(env)) await import(tracingModule.href);
  await import(mainModule.href);
}

export function markTracingStarted(): void {
  (globalThis as Record<symbol, unknown>)[STARTED] = true;
}

/** Whether this process started the SDK (an OTLP endpoint is configured). */
export function tracingEnabled(): boolean {
  return (globalThis as Record<symbol, unknown>)[STARTED] === true;
}

/** BullMQ's own spans (add, process) for Queue and Worker options, when tracing is on. */
export function bullmqTelemetry(): { telemetry: BullMQOtel } | Record<string, never> {
  return tracingEnabled() ? { telemetry: new BullMQOtel({ tracerName: "bullmq" }) } : {};
}

/**
 * The active context as a job carries it; undefined when nothing is traced. A trace not
 * sampled is carried too (its flags say so), so the worker follows the API's decision.
 */
export function activeTraceCarrier(ctx: Context = context.active()): TraceCarrier | undefined {
  const spanContext = trace.getSpanContext(ctx);
  if (!spanContext || !isSpanContextValid(spanContext)) return undefined;
  const carrier: Partial<TraceCarrier> = {};
  propagation.inject(ctx, carrier);
  return carrier.traceparent ? (carrier as TraceCarrier) : undefined;
}

/** The context a stored trace carrier continues (the root context for none). */
function contextOf(carrier: TraceCarrier | undefined): Context {
  return carrier ? propagation.extract(ROOT_CONTEXT, carrier) : ROOT_CONTEXT;
}

/** A link to the span a carrier names, for a batch that holds many traces' items. */
export function linkTo(carrier: TraceCarrier | undefined, attributes?: Attributes): Link | undefined {
  const spanContext = carrier && trace.getSpanContext(contextOf(carrier));
  return spanContext ? { context: spanContext, ...(attributes ? { attributes } : {}) } : undefined;
}

/**
 * A span of one item of a batch (a write in a carrier, an email in a batch job): the
 * child of the trace the item carries, linked to the batch's span (the active one).
 */
export function startItemSpan(name: string, carrier: TraceCarrier | undefined, attributes: Attributes, kind = SpanKind.CONSUMER): Span {
  const batch = trace.getSpanContext(context.active());
  return tracer.startSpan(name, { kind, attributes, ...(batch ? { links: [{ context: batch }] } : {}) }, carrier ? contextOf(carrier) : context.active());
}

/** Ends a span with the outcome: an error message marks it failed. */
export function endSpan(span: Span, error?: string | Error): void {
  if (error !== undefined) {
    if (error instanceof Error) span.recordException(error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : error });
  }
  span.end();
}

/** Runs fn as a span's context; the span ends with fn's outcome. */
export async function inSpan<T>(span: Span, fn: () => Promise<T>): Promise<T> {
  try {
    const value = await context.with(trace.setSpan(context.active(), span), fn);
    endSpan(span);
    return value;
  } catch (err) {
    endSpan(span, err instanceof Error ? err : String(err));
    throw err;
  }
}

/** The ids pino writes on every line logged inside a traced request or job. */
export function traceLogFields(): { trace_id?: string; span_id?: string } {
  const spanContext = trace.getSpanContext(context.active());
  if (!spanContext || !isSpanContextValid(spanContext)) return {};
  return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}

/** The log fields of a stored trace context: a line about one item of a batch names the item's trace. */
export function traceFieldsOf(carrier: TraceCarrier | undefined): { trace_id?: string; span_id?: string } {
  const match = carrier && /^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/.exec(carrier.traceparent);
  return match ? { trace_id: match[1]!, span_id: match[2]! } : {};
}

/** Sends the spans still buffered (at shutdown); bounded, and a no-op without an SDK. */
export async function flushTracing(timeoutMs = 2_000): Promise<void> {
  const provider = (trace.getTracerProvider() as { getDelegate?: () => { forceFlush?: () => Promise<void> } }).getDelegate?.();
  if (!provider?.forceFlush) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    provider.forceFlush().catch(() => {}),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
  ]);
  clearTimeout(timer);
}
