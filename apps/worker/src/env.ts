// The worker's configuration: every variable it reads, parsed once at start.
import {
  DEFAULT_DATABASE_URL,
  DEFAULT_REDIS_URL,
  hostPorts,
  int,
  LOG_LEVELS,
  NODE_ENVS,
  oneOf,
  optionalUrl,
  parseEnv,
  str,
  url,
} from "@ingest/config";
import { DEFAULT_CACHE_PREFIX } from "@ingest/catalog";
import { DEFAULT_PREFIX, RELEASE_PAYLOAD_VERSION } from "@ingest/jobs";

export function loadEnv(source: Record<string, string | undefined> = process.env) {
  return parseEnv(
    {
      NODE_ENV: oneOf(NODE_ENVS, "development"),
      LOG_LEVEL: oneOf(LOG_LEVELS, "info"),
      DATABASE_URL: url(["postgres:", "postgresql:"], DEFAULT_DATABASE_URL),
      REDIS_URL: url(["redis:", "rediss:"], DEFAULT_REDIS_URL),
      // Redis Cluster seed nodes (host:port,…): set, the queues use the cluster and
      // REDIS_URL gives only the credentials and TLS.
      REDIS_CLUSTER_NODES: hostPorts(),
      QUEUE_PREFIX: str(DEFAULT_PREFIX),
      // The catalog read cache, whose entries the worker invalidates on every product write.
      CACHE_REDIS_URL: url(["redis:", "rediss:"], source.REDIS_URL || DEFAULT_REDIS_URL),
      // The cache on a Redis Cluster; follows REDIS_CLUSTER_NODES unless CACHE_REDIS_URL is set.
      CACHE_REDIS_CLUSTER_NODES: hostPorts(source.CACHE_REDIS_URL ? undefined : source.REDIS_CLUSTER_NODES),
      CACHE_PREFIX: str(DEFAULT_CACHE_PREFIX),
      // 0 means the per-queue default.
      WORKER_CONCURRENCY: int(0, { min: 0, max: 1_000 }),
      DB_POOL_SIZE: int(10, { min: 1, max: 200 }),
      // The job format this process writes and reads: for rehearsing a rolling deploy
      // between releases; leave unset in production (the release's own).
      PAYLOAD_VERSION: int(RELEASE_PAYLOAD_VERSION, { min: 1, max: 1_000 }),
      // PostgreSQL ends a statement after this; a statement still unanswered 5 s later
      // closes its connection (the server may be gone without closing it).
      DB_STATEMENT_TIMEOUT_MS: int(30_000, { min: 1_000, max: 3_600_000 }),
      // Writes of a carrier job applied together in one transaction (1: one by one).
      WORKER_BATCH_SIZE: int(100, { min: 1, max: 1_000 }),
      // The bulk lane (POST /products/bulk): batch jobs in flight per process (0: this
      // process takes none), and lines applied per transaction.
      WORKER_BULK_CONCURRENCY: int(1, { min: 0, max: 100 }),
      BULK_CHUNK_SIZE: int(200, { min: 1, max: 10_000 }),
      // How long SIGTERM waits for active jobs before leaving them to another worker.
      SHUTDOWN_TIMEOUT_MS: int(25_000, { min: 0, max: 600_000 }),
      // How long a job's lock lasts without renewal, and how often lapsed locks are
      // looked for: together they bound how soon a killed worker's jobs run again.
      LOCK_DURATION_MS: int(30_000, { min: 1_000 }),
      STALLED_INTERVAL_MS: int(30_000, { min: 1_000 }),
      // CPU priority of the process (nice, 0-19): on a machine shared with the API, a worker
      // behind it never delays an acceptance; npm start runs its workers at 10.
      WORKER_NICE: int(0, { min: 0, max: 19 }),
      // Serves /metrics and /healthz when set (0: off).
      WORKER_METRICS_PORT: int(0, { min: 0, max: 65_535 }),
      // A Redis connection that leaves a PING or its handshake unanswered this long is
      // dropped and reconnects: its peer may be gone without closing it.
      REDIS_PING_TIMEOUT_MS: int(5_000, { min: 500, max: 60_000 }),
      // /healthz answers 503 once the queue Redis has not answered for this long, so an
      // orchestrator restarts a worker that cannot recover by itself.
      WORKER_UNHEALTHY_AFTER_MS: int(20_000, { min: 1_000 }),
      // /healthz answers 503 too when a lane with free slots has started no job for this
      // long while jobs wait for it: its fetch loop is wedged, and only a restart helps.
      WORKER_STALL_AFTER_MS: int(60_000, { min: 1_000 }),
      // Maintenance runs daily at 03:30 UTC; a period here (ms) replaces that, for tests.
      MAINTENANCE_EVERY_MS: int(0, { min: 0 }),
      // Upper bound on waiting for an earlier edit of the same product that is still alive.
      ORDER_WAIT_MAX_MS: int(3_600_000, { min: 0 }),
      // Welcome emails: the SMTP server (unset: messages are only logged), the sender,
      // email jobs in flight per process (0: this process sends none), the retries
      // that ride out an SMTP server that is down (exponential from the delay), and how
      // often the email lane sweeps email_sends for emails still pending after
      // EMAIL_DISPATCH_AFTER_MS (the others went to the queue as their registration committed).
      SMTP_URL: optionalUrl(["smtp:", "smtps:"]),
      MAIL_FROM: mailbox(DEFAULT_MAIL_FROM),
      EMAIL_CONCURRENCY: int(5, { min: 0, max: 100 }),
      EMAIL_ATTEMPTS: int(10, { min: 1, max: 100 }),
      EMAIL_RETRY_DELAY_MS: int(5_000, { min: 1, max: 3_600_000 }),
      EMAIL_DISPATCH_INTERVAL_MS: int(5_000, { min: 10, max: 60_000 }),
      EMAIL_DISPATCH_AFTER_MS: int(30_000, { min: 0, max: 3_600_000 }),
      // How long the emails of committed registrations gather before going to the queue as one job.
      EMAIL_RELAY_WAIT_MS: int(250, { min: 0, max: 10_000 }),
    },
    source,
  );
}

export type Env = ReturnType<typeof loadEnv>;

const DEFAULT_MAIL_FROM = "Ingest <no-reply@localhost>";

/** "Name <user@domain>" or "user@domain"; the domain also names the Message-IDs. */
function mailbox(fallback: string) {
  return (name: string, raw: string | undefined): string => {
    const value = raw === undefined || raw === "" ? fallback : raw;
    if (!/^(?:[^<>\r\n]*<[^<>@\s]+@[^<>@\s]+>|[^<>@\s]+@[^<>@\s]+)$/.test(value.trim())) {
      throw new Error(`${name} must be an address like "Name <user@example.com>", got "${value}"`);
    }
    return value.trim();
  };
}

// Carrier jobs in flight per process: each holds many writes, and one whose edit waits
// for an earlier edit of its product holds a slot while it waits.
export const DEFAULT_CONCURRENCY = { registrations: 8, products: 16 } as const;
