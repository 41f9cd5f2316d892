import pino from "pino";

export function createLogger(level: string, pretty: boolean) {
  return pino({
    level,
    base: { service: "api" },
    redact: ["req.headers.authorization", "req.headers.cookie", "*.password", "*.token"],
    ...(pretty ? { transport: { target: "pino-pretty", options: { colorize: true } } } : {}),
  });
}

export type Logger = ReturnType<typeof createLogger>;
