// The job_ledger table: one row per write job applied or failed for good.
import { sql } from "drizzle-orm";
import { index, integer, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";

// One row per job whose effect has been committed (or that failed for good).
// Inserting the row first in the job's transaction makes a second delivery of the
// same job wait for the first and then see it as done: that is the exactly-once.
// It also answers GET /jobs/:id after the job has left Redis.
export const jobLedger = pgTable(
  "job_ledger",
  {
    jobId: text("job_id").primaryKey(),
    queue: text("queue").notNull(),
    name: text("name").notNull(),
    status: text("status").notNull(),
    result: jsonb("result"),
    error: text("error"),
    attempts: integer("attempts").notNull().default(1),
    acceptedAt: timestamp("accepted_at", { withTimezone: true }).notNull(),
    finishedAt: timestamp("finished_at", { withTimezone: true }).notNull().default(sql`now()`),
  },
  (t) => [index("job_ledger_finished_at_idx").on(t.finishedAt)],
);
