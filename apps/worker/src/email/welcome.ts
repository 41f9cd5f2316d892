import { emailSends, type Db } from "@ingest/db";
import { check, WELCOME_EMAIL_JOB, ZWelcomeEmailJob, type EmailJobData, type TWelcomeEmailJob } from "@ingest/jobs";
import { UnrecoverableError, type Job } from "bullmq";
import { and, eq, sql } from "drizzle-orm";
import type { Logger } from "../logger.js";
import type { WorkerMetrics } from "../metrics.js";
import { describeSendError, welcomeMessageId, type Mailer } from "./mailer.js";

const KIND = "welcome";
export const WELCOME_SUBJECT = "Welcome to ingest";

export type WelcomeResult = { registrationId: number; messageId: string; sent: boolean };

const welcomeText = (name: string) =>
  `Hello ${name},\n\nthank you for registering. Your account is ready.\n\n-- ingest\n`;

const rowOf = (registrationId: number) => and(eq(emailSends.registrationId, registrationId), eq(emailSends.kind, KIND));

/**
 * Sends a registration's welcome email unless its email_sends row says it was sent.
 * The row (normally "pending" or "queued" from the registration's outbox insert; written
 * here when it is missing) is locked in a transaction that stays open across the SMTP
 * send and commits "sent" right after the server accepted the message. A job whose
 * dispatcher has not committed yet waits on that lock too. A second run at the same
 * time (a lost lock) waits on the row and then finds it sent; a run whose worker died
 * mid-send rolled the row back, and the server dropped the unfinished message, so the
 * next run sends. The one window left: the server accepted, and the worker died (or
 * PostgreSQL went away) before the commit. The next run sends again, with the same
 * Message-ID, which lets the receiving side drop the copy.
 */
export async function sendWelcomeOnce(db: Db, mailer: Mailer, email: TWelcomeEmailJob, domain: string): Promise<WelcomeResult> {
  const { registrationId } = email;
  const messageId = welcomeMessageId(registrationId, domain);
  return db.transaction(async (tx) => {
    await tx
      .insert(emailSends)
      .values({ registrationId, kind: KIND, recipient: email.email, messageId, status: "sending" })
      .onConflictDoNothing();
    const [row] = await tx.select().from(emailSends).where(rowOf(registrationId)).for("update");
    if (row?.status === "sent") return { registrationId, messageId: row.messageId ?? messageId, sent: false };
    await mailer.send({ to: email.email, subject: WELCOME_SUBJECT, text: welcomeText(email.name), messageId });
    await tx
      .update(emailSends)
      .set({ status: "sent", recipient: email.email, messageId, error: null, sentAt: sql`now()`, updatedAt: sql`now()` })
      .where(rowOf(registrationId));
    return { registrationId, messageId, sent: true };
  });
}

/** Retries ran out: the row says so, for whoever looks in PostgreSQL rather than Bull Board. */
async function recordFailure(db: Db, email: TWelcomeEmailJob, domain: string, reason: string): Promise<void> {
  await db
    .insert(emailSends)
    .values({
      registrationId: email.registrationId,
      kind: KIND,
      recipient: email.email,
      messageId: welcomeMessageId(email.registrationId, domain),
      status: "failed",
      error: reason,
    })
    .onConflictDoUpdate({
      target: [emailSends.registrationId, emailSends.kind],
      set: { status: "failed", error: reason, updatedAt: sql`now()` },
      setWhere: sql`${emailSends.status} <> 'sent'`,
    });
}

export type EmailProcessorDeps = { db: Db; mailer: Mailer; domain: string; log: Logger; metrics: WorkerMetrics };

export function createEmailProcessor(deps: EmailProcessorDeps) {
  return async (job: Job<EmailJobData>): Promise<WelcomeResult> => {
    const log = () => deps.log.child({ jobId: job.id, jobName: job.name, requestId: job.data?.requestId });
    // Unknown names and bad payloads come only from foreign producers: no retry fixes them.
    if (job.name !== WELCOME_EMAIL_JOB) throw new UnrecoverableError(`UNKNOWN_JOB: no handler for job name "${job.name}"`);
    const checked = check(ZWelcomeEmailJob, job.data?.payload);
    if (!checked.ok) {
      const detail = checked.errors.map((e) => `${e.path} ${e.message}`).join("; ");
      throw new UnrecoverableError(`INVALID_PAYLOAD: invalid payload: ${detail}`);
    }
    const email = checked.value;
    const started = performance.now();
    try {
      const result = await sendWelcomeOnce(deps.db, deps.mailer, email, deps.domain);
      deps.metrics.duration.observe({ queue: "emails", job: job.name, outcome: "completed" }, (performance.now() - started) / 1_000);
      if (result.sent) deps.metrics.emailsSent.inc({ email: KIND });
      log().info(
        { registrationId: email.registrationId, messageId: result.messageId, transport: deps.mailer.kind },
        result.sent ? "welcome email sent" : "welcome email was sent before; not sending again",
      );
      return result;
    } catch (err) {
      const { reason, permanent } = describeSendError(err);
      const last = permanent || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      deps.metrics.duration.observe({ queue: "emails", job: job.name, outcome: last ? "failed" : "retry" }, (performance.now() - started) / 1_000);
      deps.metrics.emailFailures.inc({ email: KIND, kind: last ? "final" : "transient" });
      if (last) {
        log().error({ registrationId: email.registrationId, reason, attempts: job.attemptsMade + 1 }, "welcome email failed for good");
        await recordFailure(deps.db, email, deps.domain, reason).catch((e) => log().warn({ err: e }, "could not record the failure"));
      } else {
        log().warn({ registrationId: email.registrationId, reason, attempt: job.attemptsMade + 1 }, "welcome email not sent, will retry");
      }
      throw permanent ? new UnrecoverableError(reason) : new Error(reason);
    }
  };
}
