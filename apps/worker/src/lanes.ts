// The worker's lanes, one row per queue: its concurrency, its BullMQ Worker's options and its processor.
import type { Db } from "@ingest/db";
import type { QueueName, Queues } from "@ingest/jobs";
import { bullmqTelemetry } from "@ingest/telemetry";
import type { Processor, WorkerOptions } from "bullmq";
import type { BaseDeps } from "./base-processor.js";
import { createBulkProcessor } from "./bulk.js";
import type { CommitInvalidation } from "./catalog-invalidation.js";
import { domainOf, type Mailer } from "./email/mailer.js";
import type { WelcomeRelay } from "./email/relay.js";
import { createEmailProcessor } from "./email/welcome.js";
import { DEFAULT_CONCURRENCY, type Env } from "./env.js";
import { createMaintenanceProcessor } from "./maintenance.js";
import type { TurnSignal } from "./ordering.js";
import { createWritesProcessor } from "./writes-processor.js";

export type Lane = {
  /** Jobs in flight per process; 0 leaves the lane's jobs to other processes. */
  concurrency: number;
  /** The Worker's options besides its connection, prefix and concurrency. */
  options: Partial<WorkerOptions>;
  /** Builds the processor, only in a process that runs the lane. */
  processor: () => Processor;
  /** Logs each job that fails for good (the email lane logs each email's failure itself). */
  logFinalFailure?: boolean;
  /**
   * Every wait in this lane's jobs has a timeout, so one running longer is stuck for good
   * and /healthz says so (lane-stall.ts); unset where a job may legitimately run long.
   */
  maxJobMs?: number;
};

/** What the lanes' processors work with, made once per process by runtime.ts. */
type LaneResources = BaseDeps & {
  db: Db;
  queues: Queues;
  turns: TurnSignal;
  catalog: CommitInvalidation;
  relay: WelcomeRelay;
  /** The email lane's own pool and mailer, in a process that sends emails. */
  mail: { db: Db; mailer: Mailer } | undefined;
};

/** The options of every lane that takes accepted work: the same locks, stall tolerance, job metrics and spans. */
function laneOptions(env: Env): Partial<WorkerOptions> {
  return {
    // A killed worker's jobs come back after the lock expires; tolerate a few kills.
    maxStalledCount: 5,
    lockDuration: env.LOCK_DURATION_MS,
    stalledInterval: env.STALLED_INTERVAL_MS,
    // Fleet-wide finished counts per minute, kept a week; the API exports them.
    metrics: { maxDataPoints: 7 * 24 * 60 },
    // BullMQ's process span of each job, continuing the trace of its add, when tracing is on.
    ...bullmqTelemetry(),
  };
}

/** Every queue has its row: a queue without one is a compile error. */
export function workerLanes(env: Env, r: LaneResources): Record<QueueName, Lane> {
  const options = laneOptions(env);
  const { log, metrics } = r;
  const applying = { db: r.db, queues: r.queues, orderWaitMaxMs: env.ORDER_WAIT_MAX_MS, turns: r.turns, catalog: r.catalog, log, metrics };
  const writes = { ...applying, chunkSize: env.WORKER_BATCH_SIZE };
  // A carrier's statements each end within the statement timeout, its waits for earlier
  // edits within a second, its Redis commands behind the watchdog.
  const maxJobMs = Math.max(env.WORKER_STALL_AFTER_MS, 2 * env.DB_STATEMENT_TIMEOUT_MS);
  const { mail } = r;
  return {
    registrations: {
      concurrency: env.WORKER_CONCURRENCY || DEFAULT_CONCURRENCY.registrations,
      options,
      // The welcome emails of registrations go to the emails queue as they commit.
      processor: () => createWritesProcessor("registrations", { ...writes, afterApplied: async (applied) => r.relay.add(applied) }),
      logFinalFailure: true,
      maxJobMs,
    },
    products: {
      concurrency: env.WORKER_CONCURRENCY || DEFAULT_CONCURRENCY.products,
      options,
      processor: () => createWritesProcessor("products", writes),
      logFinalFailure: true,
      maxJobMs,
    },
    // Batches have their own worker and concurrency, so they never hold up interactive writes.
    bulk: {
      concurrency: env.WORKER_BULK_CONCURRENCY,
      options,
      processor: () => createBulkProcessor({ ...applying, chunkSize: env.BULK_CHUNK_SIZE }),
    },
    // Housekeeping, one run at a time, on BullMQ's own lock and stall settings.
    maintenance: {
      concurrency: 1,
      options: {},
      processor: () => createMaintenanceProcessor({ db: r.db, queues: r.queues, log, metrics }),
    },
    // Sends with a pool and a mailer of its own, which exist where the lane runs.
    emails: {
      concurrency: env.EMAIL_CONCURRENCY,
      options,
      processor: () => {
        if (!mail) throw new Error("the email lane runs only where its pool and mailer were opened");
        return createEmailProcessor({ db: mail.db, mailer: mail.mailer, domain: domainOf(env.MAIL_FROM), queue: r.queues.emails, log, metrics });
      },
    },
  };
}
