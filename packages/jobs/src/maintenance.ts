// The daily maintenance job and the scheduler that adds it.
import type { Queue } from "bullmq";

export const MAINTENANCE_SCHEDULER_ID = "daily-maintenance";
export const MAINTENANCE_JOB = "maintenance.purge";
const DAILY_AT_0330_UTC = "30 3 * * *";

/**
 * Upserting under one scheduler id is idempotent: however many worker replicas do it
 * at start, Redis holds one scheduler and each of its runs is one job.
 */
export async function upsertMaintenanceScheduler(queue: Queue, everyMs?: number): Promise<void> {
  await queue.upsertJobScheduler(
    MAINTENANCE_SCHEDULER_ID,
    everyMs ? { every: everyMs } : { pattern: DAILY_AT_0330_UTC, tz: "UTC" },
    {
      name: MAINTENANCE_JOB,
      data: {},
      opts: { attempts: 3, backoff: { type: "exponential", delay: 60_000 }, removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } },
    },
  );
}
