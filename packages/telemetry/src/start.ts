// Starts OpenTelemetry tracing for a process, before the modules it instruments are
// imported (each app's entry imports this, then its main module). Nothing starts unless
// an OTLP endpoint is configured: without one no SDK, no hooks, no cost on any path.
import { register } from "node:module";
import { createAddHookMessageChannel } from "import-in-the-middle";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { ExpressInstrumentation, ExpressLayerType } from "@opentelemetry/instrumentation-express";
import { HttpInstrumentation } from "@opentelemetry/instrumentation-http";
import { IORedisInstrumentation } from "@opentelemetry/instrumentation-ioredis";
import { PgInstrumentation } from "@opentelemetry/instrumentation-pg";
import { markTracingStarted, tracingConfigured } from "./index.js";
import { createSampler } from "./sampler.js";

type Env = Record<string, string | undefined>;

/** The name a process reports unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES names it. */
function serviceNameOr(env: Env, fallback: string): string | undefined {
  if (env.OTEL_SERVICE_NAME?.trim()) return undefined;
  if (/(^|,)\s*service\.name\s*=/.test(env.OTEL_RESOURCE_ATTRIBUTES ?? "")) return undefined;
  return fallback;
}

/**
 * Starts the SDK when configured; answers whether it did. The SDK reads the rest of the
 * standard environment itself (protocol, headers, resource attributes, batch and export
 * timeouts); the sampler is the standard one the environment names, less BullMQ's
 * housekeeping (sampler.ts). Spans leave through a BatchSpanProcessor in the background, so
 * a collector that is slow or away only drops spans, never delays a request.
 */
export async function startTracing(defaultServiceName: string, env: Env = process.env): Promise<boolean> {
  if (!tracingConfigured(env)) return false;
  // Hooks ESM imports (the apps are ES modules) for the instrumented packages only.
  const { registerOptions, waitForAllMessagesAcknowledged } = createAddHookMessageChannel();
  register("import-in-the-middle/hook.mjs", import.meta.url, registerOptions);
  const serviceName = serviceNameOr(env, defaultServiceName);
  const sdk = new NodeSDK({
    ...(serviceName ? { serviceName } : {}),
    sampler: createSampler(env),
    // Traces only: the apps' metrics are Prometheus', and logs go to stdout.
    ...(env.OTEL_METRICS_EXPORTER ? {} : { metricReaders: [] }),
    ...(env.OTEL_LOGS_EXPORTER ? {} : { logRecordProcessors: [] }),
    instrumentations: [
      new HttpInstrumentation({
        // Probes and scrapes would bury the requests worth reading.
        ignoreIncomingRequestHook: (req) => /^\/(healthz|readyz|metrics)\b/.test(req.url ?? ""),
      }),
      // The route's router and handler spans; one span per middleware (helmet, cors, the
      // body parser, …) would cost more than the request itself and say little.
      new ExpressInstrumentation({ ignoreLayersType: [ExpressLayerType.MIDDLEWARE] }),
      new PgInstrumentation({ requireParentSpan: true }),
      new IORedisInstrumentation({ requireParentSpan: true }),
    ],
  });
  sdk.start();
  markTracingStarted();
  await waitForAllMessagesAcknowledged();
  return true;
}
