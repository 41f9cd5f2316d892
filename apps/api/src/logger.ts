// The API's pino logger, with the trace ids of the current span on every line.
import { traceLogFields } from "@ingest/telemetry";
import pino from "pino";

export function createLogger(level: string, pretty: boolean) {
  return pino({
    level,
    // Lines logged inside a traced request or job name its trace and span.
    mixin: traceLogFields,
    base: { service: "api" },
    redact: ["req.headers.authorization", "req.headers.cookie", "*.password", "*.token"],
    ...(pretty ? { transport: { target: "pino-pretty", options: { colorize: true } } } : {}),
  });
}

export type Logger = ReturnType<typeof createLogger>;
