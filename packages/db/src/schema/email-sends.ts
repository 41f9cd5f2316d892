// The email_sends table: the outbox of welcome emails registrations are owed.
import { sql } from "drizzle-orm";
import { check, index, integer, jsonb, pgTable, primaryKey, text, timestamp, varchar } from "drizzle-orm/pg-core";
import { registrations } from "./registrations.js";

// One row per email a registration is owed (kind: "welcome"). It is an outbox: the
// registration's own statement inserts it as "pending", so the decision to send commits
// with the registration; the email lane's dispatcher adds the email job and marks it
// "queued" in one transaction. The send writes and locks the row in the transaction
// that holds the SMTP exchange, and commits it as "sent" (with the Message-ID) once the
// server accepted the message: a later run of the same job finds it and sends nothing,
// and a run at the same time waits on the lock. A crash mid-send rolls the row back, so
// "sending" is never seen by others. "failed": retries ran out (a retry from Bull Board
// may still send).
export const emailSends = pgTable(
  "email_sends",
  {
    registrationId: integer("registration_id")
      .notNull()
      .references(() => registrations.id, { onDelete: "cascade" }),
    kind: text("kind").notNull(),
    recipient: varchar("recipient", { length: 254 }).notNull(),
    // Known once the email lane sends: the sender's domain names it.
    messageId: text("message_id"),
    status: text("status").notNull(),
    error: text("error"),
    // The registration's request id, so the email's log lines carry it too.
    requestId: text("request_id"),
    // The W3C trace context of the registration's write (traceparent, tracestate), when it
    // was traced: an email the dispatcher sweeps up later still joins the write's trace.
    traceContext: jsonb("trace_context").$type<{ traceparent: string; tracestate?: string }>(),
    sentAt: timestamp("sent_at", { withTimezone: true }),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().default(sql`now()`),
  },
  (t) => [
    primaryKey({ columns: [t.registrationId, t.kind] }),
    check("email_sends_status_check", sql`${t.status} in ('pending', 'queued', 'sending', 'sent', 'failed')`),
    check("email_sends_sent_message_id_check", sql`${t.status} <> 'sent' or ${t.messageId} is not null`),
    // The dispatcher's scan: only the rows still waiting for their job.
    index("email_sends_pending_idx").on(t.registrationId).where(sql`${t.status} = 'pending'`),
  ],
);
