// The api's entry: when an OTLP endpoint is configured, tracing starts before the
// modules it instruments (http, express, pg, ioredis) are imported by the main module.
import { tracingConfigured } from "@ingest/telemetry";

const here = (file: string) => new URL(file, import.meta.url).href;
if (tracingConfigured(process.env)) await import(here("./tracing.js"));
await import(here("./main.js"));
