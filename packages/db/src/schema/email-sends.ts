import { sql } from "drizzle-orm";
import { check, integer, pgTable, primaryKey, text, timestamp, varchar } from "drizzle-orm/pg-core";
import { registrations } from "./registrations.js";

// One row per email a registration is owed (kind: "welcome"). The worker writes and
// locks the row in the transaction that holds the SMTP send, and commits it as "sent"
// once the server accepted the message: a later run of the same job finds it and
// sends nothing, and a run at the same time waits on the lock. A crash mid-send rolls
// the row back, so "sending" is never seen by others. "failed": retries ran out (a
// retry from Bull Board may still send).
export const emailSends = pgTable(
  "email_sends",
  {
    registrationId: integer("registration_id")
      .notNull()
      .references(() => registrations.id, { onDelete: "cascade" }),
    kind: text("kind").notNull(),
    recipient: varchar("recipient", { length: 254 }).notNull(),
    messageId: text("message_id").notNull(),
    status: text("status").notNull(),
    error: text("error"),
    sentAt: timestamp("sent_at", { withTimezone: true }),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().default(sql`now()`),
  },
  (t) => [
    primaryKey({ columns: [t.registrationId, t.kind] }),
    check("email_sends_status_check", sql`${t.status} in ('sending', 'sent', 'failed')`),
  ],
);
