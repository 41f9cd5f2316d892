// The registrations table: one row per registered email.
import { sql } from "drizzle-orm";
import { boolean, check, integer, pgTable, text, timestamp, uniqueIndex, varchar } from "drizzle-orm/pg-core";

export const registrations = pgTable(
  "registrations",
  {
    id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
    email: varchar("email", { length: 254 }).notNull(),
    name: varchar("name", { length: 255 }).notNull(),
    plan: varchar("plan", { length: 16 }).notNull().default("free"),
    marketingOptIn: boolean("marketing_opt_in").notNull().default(false),
    jobId: text("job_id").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().default(sql`now()`),
  },
  (t) => [
    uniqueIndex("registrations_email_lower_idx").on(sql`lower(${t.email})`),
    check("registrations_plan_check", sql`${t.plan} in ('free', 'pro', 'team')`),
  ],
);
