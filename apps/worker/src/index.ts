// The worker's entry: when an OTLP endpoint is configured, tracing starts before the
// modules it instruments (http, express, pg, ioredis) are imported by the main module.
import { bootWithTracing } from "@ingest/telemetry";

await bootWithTracing(process.env, new URL("./tracing.js", import.meta.url), new URL("./main.js", import.meta.url));
