import {
  DEFAULT_DATABASE_URL,
  DEFAULT_REDIS_URL,
  int,
  LOG_LEVELS,
  NODE_ENVS,
  oneOf,
  parseEnv,
  str,
  url,
} from "@ingest/config";
import { DEFAULT_PREFIX } from "@ingest/jobs";

export function loadEnv(source: Record<string, string | undefined> = process.env) {
  return parseEnv(
    {
      NODE_ENV: oneOf(NODE_ENVS, "development"),
      LOG_LEVEL: oneOf(LOG_LEVELS, "info"),
      PORT: int(3000, { min: 0, max: 65_535 }),
      HOST: str("0.0.0.0"),
      DATABASE_URL: url(["postgres:", "postgresql:"], DEFAULT_DATABASE_URL),
      REDIS_URL: url(["redis:", "rediss:"], DEFAULT_REDIS_URL),
      QUEUE_PREFIX: str(DEFAULT_PREFIX),
      BODY_LIMIT_BYTES: int(100 * 1024, { min: 1_024, max: 50 * 1024 * 1024 }),
      DB_POOL_SIZE: int(10, { min: 1, max: 200 }),
      SHUTDOWN_TIMEOUT_MS: int(10_000, { min: 0, max: 600_000 }),
    },
    source,
  );
}

export type Env = ReturnType<typeof loadEnv>;
