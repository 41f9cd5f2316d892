import type { Db } from "@ingest/db";
import { carrierJobId, isJobName, JOBS, queueOfJobId, type JobData, type QueueName, type Queues, type RedisClient } from "@ingest/jobs";
import { DelayedError, UnrecoverableError, type Job } from "bullmq";
import { applyJob } from "./apply.js";
import type { Applier } from "./apply-batch.js";
import type { CommitInvalidation } from "./catalog-invalidation.js";
import { PredecessorPendingError } from "./errors.js";
import type { Logger } from "./logger.js";
import type { WorkerMetrics } from "./metrics.js";

// A predecessor that is not in Redis yet may still be on its way (its add can land a
// moment after ours); after this long it certainly never will.
const PREDECESSOR_GRACE_MS = 15_000;
const FINISHED = new Set(["completed", "failed", "unknown"]);

export type ProcessorDeps = {
  db: Db;
  /** Applies a job, alone or in a micro-batch with others of this queue. */
  apply: Applier;
  queues: Queues;
  redis: RedisClient;
  prefix: string;
  log: Logger;
  metrics: WorkerMetrics;
  orderWaitMaxMs: number;
  catalog: CommitInvalidation;
};

// A waiting edit leaves its id under its predecessor's, so the worker that applies the
// predecessor can wake it at once instead of letting it sleep out its delay.
const WAITER_TTL_S = 120;
// How long a parked edit sleeps if its wake-up is lost (its predecessor's worker died).
const PARKED_MS = 5_000;
const waiterKey = (prefix: string, jobId: string) => `${prefix}:waiter:${jobId}`;

export type OrderDeps = Pick<ProcessorDeps, "queues" | "redis" | "prefix" | "orderWaitMaxMs">;

/**
 * Whether an edit's predecessor may still apply: it is queued or running (a batch line
 * counts as alive while its batch job is), or not in Redis yet but accepted only a
 * moment ago. Past orderWaitMaxMs nothing is waited for.
 */
export async function predecessorAlive(deps: OrderDeps, acceptedAt: number, prevJobId: string | undefined): Promise<boolean> {
  if (Date.now() - acceptedAt > deps.orderWaitMaxMs) return false;
  if (!prevJobId) return false;
  const carrier = carrierJobId(prevJobId);
  const queue = queueOfJobId(carrier);
  const prev = queue ? await deps.queues[queue].getJob(carrier) : undefined;
  if (!prev) return Date.now() - acceptedAt < PREDECESSOR_GRACE_MS;
  return !FINISHED.has(await prev.getState());
}

/** Wakes the edit parked behind jobId (an edit or a batch line), if one is. */
export async function wakeSuccessor(deps: OrderDeps, jobId: string): Promise<void> {
  const key = waiterKey(deps.prefix, jobId);
  const waiter = await deps.redis.get(key);
  if (!waiter) return;
  await deps.redis.del(key);
  const queue = queueOfJobId(waiter);
  const next = queue ? await deps.queues[queue].getJob(waiter) : undefined;
  if (!next) return;
  // The waiter may be a moment from parking itself; look again once before giving up.
  for (const pause of [0, 100]) {
    if (pause) await new Promise((r) => setTimeout(r, pause));
    if (await next.isDelayed()) return next.promote();
  }
}

export function createProcessor(queue: QueueName, deps: ProcessorDeps) {
  return async (job: Job<JobData>, token?: string): Promise<unknown> => {
    // Built only when something is logged: at thousands of jobs a second a child per job shows.
    const log = () => deps.log.child({ jobId: job.id, jobName: job.name, requestId: job.data.requestId });
    // Unknown names come only from foreign producers: no retry will give them a handler.
    if (!isJobName(job.name)) throw new UnrecoverableError(`UNKNOWN_JOB: no handler for job name "${job.name}"`);
    const envelope = {
      id: job.id!,
      name: job.name,
      queue,
      data: job.data,
      timestamp: job.timestamp,
      attemptsMade: job.attemptsMade,
      redelivered: job.attemptsStarted > 1 || job.attemptsMade > 0,
    };
    const ordered = JOBS[job.name].ordered;
    const started = performance.now();
    let outcome;
    try {
      outcome = await deps.apply(envelope);
    } catch (err) {
      if (!(err instanceof PredecessorPendingError)) {
        log().warn({ err, attempt: job.attemptsMade + 1 }, "job failed, will retry");
        deps.metrics.failures.inc({ queue, job: job.name, kind: "transient" });
        deps.metrics.duration.observe({ queue, job: job.name, outcome: "retry" }, (performance.now() - started) / 1_000);
        throw err;
      }
      if (await predecessorAlive(deps, job.timestamp, err.prevJobId)) {
        // Wait without spending an attempt; the product's earlier edit goes first. The
        // edit parks until its predecessor's worker wakes it (right after committing);
        // polling instead would make a deep backlog of one product's edits thrash.
        deps.metrics.orderWaits.inc();
        if (err.prevJobId) await deps.redis.set(waiterKey(deps.prefix, err.prevJobId), job.id!, "EX", WAITER_TTL_S);
        // The predecessor may have finished before the mark was set: then nobody wakes us.
        const parked = err.prevJobId !== undefined && (await predecessorAlive(deps, job.timestamp, err.prevJobId));
        await job.moveToDelayed(Date.now() + (parked ? PARKED_MS : 25), token);
        throw new DelayedError();
      }
      log().warn({ prevJobId: err.prevJobId }, "earlier edit of this product is gone; applying without it");
      outcome = await applyJob(deps.db, envelope, { ignorePredecessor: true });
    }
    const ms = Math.round(performance.now() - started);
    deps.metrics.duration.observe({ queue, job: job.name, outcome: outcome.status }, ms / 1_000);
    if (outcome.status === "failed") {
      deps.metrics.failures.inc({ queue, job: job.name, kind: "permanent" });
      log().warn({ code: outcome.code, reason: outcome.message, ms }, "job failed permanently");
      // A failed edit still ends its turn: the next edit of the product may go.
      if (ordered) void wakeSuccessor(deps, job.id!).catch(() => {});
      throw new UnrecoverableError(`${outcome.code}: ${outcome.message}`);
    }
    // Before the job reports completed: the next read after that must miss the cache.
    await deps.catalog.afterCommit(job.name, envelope.data.payload, outcome.result);
    // Per-job success lines are debug: at thousands of jobs a second they would be the cost.
    if (deps.log.isLevelEnabled("debug")) log().debug({ ms }, "job completed");
    // Only an ordered edit can have a successor waiting on it.
    if (ordered) void wakeSuccessor(deps, job.id!).catch((err) => log().debug({ err }, "could not wake the next edit"));
    return outcome.result;
  };
}
