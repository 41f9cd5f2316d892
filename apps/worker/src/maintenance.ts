import type { Db } from "@ingest/db";
import type { Queues } from "@ingest/jobs";
import { pruneLedger } from "./ledger.js";
import type { Logger } from "./logger.js";

const LEDGER_KEEP_DAYS = 7;
const EVENTS_KEEP = 10_000;

/**
 * Housekeeping run by the job scheduler: ledger rows past their use (job status is
 * promised for 24 hours; they are kept 7 days) and queue event streams beyond their cap.
 * Idempotency records and sequence keys carry their own Redis TTLs, so
 * Redis drops them without help.
 */
export function createMaintenanceProcessor(deps: { db: Db; queues: Queues; log: Logger }) {
  return async () => {
    const ledgerRowsDeleted = await pruneLedger(deps.db, LEDGER_KEEP_DAYS);
    await Promise.all(Object.values(deps.queues).map((q) => q.trimEvents(EVENTS_KEEP)));
    deps.log.info({ ledgerRowsDeleted }, "maintenance done");
    return { ledgerRowsDeleted };
  };
}
