import pino from "pino";

export function createLogger(level: string, pretty: boolean) {
  return pino({
    level,
    base: { service: "worker" },
    redact: ["*.password", "*.token", "*.authorization", "err.config"],
    ...(pretty ? { transport: { target: "pino-pretty", options: { colorize: true } } } : {}),
  });
}

export type Logger = ReturnType<typeof createLogger>;
