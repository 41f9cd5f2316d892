// The sampler of OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, less BullMQ's housekeeping:
// its workers trace their stalled-job checks and fetches as traces of their own, every
// few seconds per queue, which would bury the traces of writes. Their Redis commands go
// with them (children of a trace not sampled are not sampled either).
import { trace, type Attributes, type Context, type Link, type SpanKind } from "@opentelemetry/api";
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  ParentBasedSampler,
  SamplingDecision,
  TraceIdRatioBasedSampler,
  type Sampler,
  type SamplingResult,
} from "@opentelemetry/sdk-trace-base";

type Env = Record<string, string | undefined>;

const HOUSEKEEPING = /^(getNextJob|startStalledCheckTimer|moveStalledJobsToWait|rateLimit|pause|resume|close) /;

/** The standard sampler the environment names (tracingEnvProblems has checked the values). */
function samplerFromEnv(env: Env): Sampler {
  const ratio = () => {
    const arg = Number(env.OTEL_TRACES_SAMPLER_ARG?.trim() || "1");
    return new TraceIdRatioBasedSampler(Number.isFinite(arg) ? arg : 1);
  };
  switch (env.OTEL_TRACES_SAMPLER?.trim() || "parentbased_always_on") {
    case "always_on":
      return new AlwaysOnSampler();
    case "always_off":
      return new AlwaysOffSampler();
    case "traceidratio":
      return ratio();
    case "parentbased_always_off":
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new ParentBasedSampler({ root: ratio() });
    default:
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

export function createSampler(env: Env): Sampler {
  const standard = samplerFromEnv(env);
  return {
    shouldSample(context: Context, traceId: string, name: string, kind: SpanKind, attributes: Attributes, links: Link[]): SamplingResult {
      if (!trace.getSpanContext(context) && HOUSEKEEPING.test(name)) return { decision: SamplingDecision.NOT_RECORD };
      return standard.shouldSample(context, traceId, name, kind, attributes, links);
    },
    toString: () => `IngestSampler{${standard.toString()}}`,
  };
}
