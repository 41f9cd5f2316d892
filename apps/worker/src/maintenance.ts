// The maintenance lane's processor: the scheduler's housekeeping runs.
import type { Db } from "@ingest/db";
import { MAINTENANCE_JOB, MAINTENANCE_QUEUE, type Queues } from "@ingest/jobs";
import { createLaneProcessor, type BaseDeps } from "./base-processor.js";
import { pruneLedger } from "./ledger.js";

const LEDGER_KEEP_DAYS = 7;
const EVENTS_KEEP = 10_000;

/**
 * Housekeeping run by the job scheduler: ledger rows past their use (job status is
 * promised for 24 hours; they are kept 7 days) and queue event streams beyond their cap.
 * Idempotency records and sequence keys carry their own Redis TTLs, so
 * Redis drops them without help.
 */
export function createMaintenanceProcessor(deps: BaseDeps & { db: Db; queues: Queues }) {
  const handle = async () => {
    const ledgerRowsDeleted = await pruneLedger(deps.db, LEDGER_KEEP_DAYS);
    await Promise.all(Object.values(deps.queues).map((q) => q.trimEvents(EVENTS_KEEP)));
    deps.log.info({ ledgerRowsDeleted }, "maintenance done");
    return { ledgerRowsDeleted };
  };
  // The scheduler's runs carry no data: their name is all there is to read.
  return createLaneProcessor({ queue: MAINTENANCE_QUEUE, read: (job) => job.name === MAINTENANCE_JOB || undefined, handle }, deps);
}
