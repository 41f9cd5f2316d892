// Loaded by index.ts only when traces are wanted: the OpenTelemetry SDK and its hooks.
import { startTracing } from "@ingest/telemetry/start";

await startTracing("ingest-worker");
