// The API's configuration: every variable it reads, parsed once at start, and the checks across them.
import {
  DEFAULT_DATABASE_URL,
  DEFAULT_REDIS_URL,
  hostPorts,
  bool,
  int,
  LOG_LEVELS,
  NODE_ENVS,
  oneOf,
  optionalStr,
  optionalUrl,
  parseEnv,
  str,
  url,
} from "@ingest/config";
import { DEFAULT_CACHE_PREFIX } from "@ingest/catalog";
import { DEFAULT_BULK_MAX_LINES, DEFAULT_PREFIX, hasHashTag, RELEASE_PAYLOAD_VERSION } from "@ingest/jobs";
import { corsOrigins } from "./middleware/cors.js";

export function loadEnv(source: Record<string, string | undefined> = process.env) {
  return parseEnv(
    {
      NODE_ENV: oneOf(NODE_ENVS, "development"),
      LOG_LEVEL: oneOf(LOG_LEVELS, "info"),
      PORT: int(3000, { min: 0, max: 65_535 }),
      HOST: str("0.0.0.0"),
      DATABASE_URL: url(["postgres:", "postgresql:"], DEFAULT_DATABASE_URL),
      REDIS_URL: url(["redis:", "rediss:"], DEFAULT_REDIS_URL),
      // Redis Cluster seed nodes (host:port,…): set, the queues use the cluster and
      // REDIS_URL gives only the credentials and TLS.
      REDIS_CLUSTER_NODES: hostPorts(),
      QUEUE_PREFIX: str(DEFAULT_PREFIX),
      // A write is answered 202 only once it reached this many replicas of the queue
      // Redis (WAIT), within the timeout, else 503; 0: once the master has it.
      REDIS_WAIT_REPLICAS: int(0, { min: 0, max: 16 }),
      REDIS_WAIT_TIMEOUT_MS: int(500, { min: 1, max: 10_000 }),
      // The writes accepted close together go to Redis as one job (a carrier): one closes
      // at the end of an event-loop turn once it holds CARRIER_MIN_WRITES, else at the
      // latest CARRIER_WAIT_MS after its first write (0: always at the end of the turn).
      CARRIER_WAIT_MS: int(10, { min: 0, max: 1_000 }),
      CARRIER_MIN_WRITES: int(8, { min: 1, max: 500 }),
      // A Redis connection that leaves a PING or its handshake unanswered this long is
      // dropped and reconnects: its peer may be gone without closing it.
      REDIS_PING_TIMEOUT_MS: int(5_000, { min: 500, max: 60_000 }),
      BODY_LIMIT_BYTES: int(100 * 1024, { min: 1_024, max: 50 * 1024 * 1024 }),
      // POST /products/bulk: lines and bytes per request (each line within BODY_LIMIT_BYTES).
      BULK_MAX_LINES: int(DEFAULT_BULK_MAX_LINES, { min: 1, max: 1_000_000 }),
      BULK_MAX_BYTES: int(20 * 1024 * 1024, { min: 1_024, max: 1024 * 1024 * 1024 }),
      DB_POOL_SIZE: int(10, { min: 1, max: 200 }),
      // The job format this process writes and reads: for rehearsing a rolling deploy
      // between releases; leave unset in production (the release's own).
      PAYLOAD_VERSION: int(RELEASE_PAYLOAD_VERSION, { min: 1, max: 1_000 }),
      // PostgreSQL ends a statement after this; a statement still unanswered 5 s later
      // closes its connection (the server may be gone without closing it).
      DB_STATEMENT_TIMEOUT_MS: int(30_000, { min: 1_000, max: 3_600_000 }),
      SHUTDOWN_TIMEOUT_MS: int(10_000, { min: 0, max: 600_000 }),
      // Catalog read cache: may be its own Redis (allkeys-lru); keys under CACHE_PREFIX.
      CACHE_REDIS_URL: url(["redis:", "rediss:"], source.REDIS_URL || DEFAULT_REDIS_URL),
      // The cache on a Redis Cluster; follows REDIS_CLUSTER_NODES unless CACHE_REDIS_URL is set.
      CACHE_REDIS_CLUSTER_NODES: hostPorts(source.CACHE_REDIS_URL ? undefined : source.REDIS_CLUSTER_NODES),
      CACHE_PREFIX: str(DEFAULT_CACHE_PREFIX),
      // Fresh for TTL, then served stale while one refresh runs; Redis keeps an entry
      // KEEP seconds in all, the rest only to answer while PostgreSQL is down.
      CACHE_TTL_S: int(60, { min: 1, max: 86_400 }),
      CACHE_STALE_S: int(300, { min: 0, max: 86_400 }),
      CACHE_KEEP_S: int(3_600, { min: 1, max: 7 * 86_400 }),
      // In-process copies in front of Redis; 0 turns them off.
      CACHE_LOCAL_TTL_MS: int(1_000, { min: 0, max: 60_000 }),
      CACHE_LOCAL_MAX_MB: int(64, { min: 1, max: 4_096 }),
      // Bull Board login; in production the API refuses to start without both.
      ADMIN_USER: optionalStr(),
      ADMIN_PASSWORD: optionalStr(),
      ADMIN_READ_ONLY: bool(false),
      // When either is set, writes need a bearer token with the route's scope.
      JWT_SECRET: optionalStr(),
      JWKS_URL: optionalUrl(["https:", "http:"]),
      JWT_ISSUER: optionalStr(),
      JWT_AUDIENCE: optionalStr(),
      RATE_LIMIT_PER_MIN: int(6_000, { min: 0 }),
      SHED_LAG_MS: int(200, { min: 0 }),
      QUEUE_HIGH_WATER: int(1_000_000, { min: 0 }),
      // Writes get 503 once the queue Redis uses this share of its maxmemory (0: off), so
      // the workers, whose scripts a full Redis refuses, can still drain and free it.
      QUEUE_MEMORY_HIGH_WATER_PCT: int(80, { min: 0, max: 100 }),
      // Origins browsers may call from (comma list, or *); unset: no CORS headers at all.
      CORS_ORIGINS: corsOrigins(),
      // Proxies in front of the API (a hop count), so req.ip is the client's address.
      TRUST_PROXY: int(0, { min: 0, max: 10 }),
      API_PROCESSES: int(1, { min: 0, max: 256 }),
      // Echoed by GET /healthz, so a supervisor can tell its own API from another
      // process answering on the port (`npm start` sets one per start).
      INSTANCE_ID: optionalStr(),
    },
    source,
  );
}

export type Env = ReturnType<typeof loadEnv>;

// In production, shorter passwords for Bull Board are refused.
const MIN_ADMIN_PASSWORD = 8;

/**
 * Checks that span variables; the strict ones apply in production only. source: the
 * raw environment, where a variable set to an empty string is told from one not set.
 */
export function checkEnv(env: Env, source: Record<string, string | undefined> = process.env): string[] {
  const problems: string[] = [];
  const production = env.NODE_ENV === "production";
  if (production && (!env.ADMIN_USER || !env.ADMIN_PASSWORD)) {
    problems.push("ADMIN_USER and ADMIN_PASSWORD are required in production (they protect /admin/queues)");
  } else if (production && env.ADMIN_PASSWORD && env.ADMIN_PASSWORD.length < MIN_ADMIN_PASSWORD) {
    problems.push(`ADMIN_PASSWORD must be at least ${MIN_ADMIN_PASSWORD} characters in production`);
  }
  // An empty secret would leave writes open without a word: in production, say so.
  for (const name of ["JWT_SECRET", "JWKS_URL"] as const) {
    if (production && source[name] !== undefined && source[name]!.trim() === "") {
      problems.push(`${name} is set but empty: give it a value, or unset it to leave writes open`);
    }
  }
  if (env.REDIS_CLUSTER_NODES && !hasHashTag(env.QUEUE_PREFIX)) {
    problems.push(`QUEUE_PREFIX must contain a {hash tag} on a Redis Cluster (REDIS_CLUSTER_NODES), got "${env.QUEUE_PREFIX}"`);
  }
  if (env.JWT_SECRET && env.JWKS_URL) problems.push("set JWT_SECRET or JWKS_URL, not both");
  if (env.JWT_SECRET && env.JWT_SECRET.length < 32 && env.NODE_ENV === "production") {
    problems.push("JWT_SECRET must be at least 32 characters in production");
  }
  return problems;
}
