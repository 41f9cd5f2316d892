// The emails lane's processor: welcome emails sent at most once each (as far as SMTP
// allows), a batch job's emails a chunk per transaction, and every email that fails for
// good turned into a failed job of its own for Bull Board.
import type { Db } from "@ingest/db";
import {
  check,
  emailJobOptions,
  EMAILS_QUEUE,
  emailsOf,
  welcomeEmailData,
  welcomeEmailJobId,
  WELCOME_EMAIL_JOB,
  ZWelcomeEmailJob,
  type WelcomeEmail,
} from "@ingest/jobs";
import { traceFieldsOf } from "@ingest/telemetry";
import { UnrecoverableError, type Job, type Queue } from "bullmq";
import { sql } from "drizzle-orm";
import { createLaneProcessor, type BaseDeps, type JobScope } from "../base-processor.js";
import { traceEmails } from "./email-spans.js";
import { describeSendError, welcomeMessageId, type Mailer } from "./mailer.js";

const KIND = "welcome";
const WELCOME_SUBJECT = "Welcome to ingest";
// Emails per transaction: their rows stay locked while the SMTP server takes them.
const SEND_CHUNK = 100;

export type SendOutcome =
  | { registrationId: number; messageId: string; sent: boolean }
  | { registrationId: number; reason: string; permanent: boolean };

const welcomeText = (name: string) =>
  `Hello ${name},\n\nthank you for registering. Your account is ready.\n\n-- ingest\n`;

const idsJson = (emails: { registrationId: number }[]) => JSON.stringify(emails.map((e) => e.registrationId));

/**
 * Sends each welcome email whose email_sends row does not say it was sent, a chunk at a
 * time. A chunk's rows (normally "pending" or "queued" from the registration's outbox
 * insert) are locked in a transaction that stays open while the SMTP server takes the
 * chunk's messages side by side, and the ones it accepted are marked "sent" (with their
 * Message-ID) before the commit. A run at the same time (a lost lock) waits on the rows
 * and then finds them sent; a run whose worker died mid-chunk rolled them back, and the
 * server dropped the unfinished messages, so the next run sends. The window left: the
 * server accepted and the worker died (or PostgreSQL went away) before the commit; the
 * next run sends those of the chunk again with the same Message-IDs, by which a receiver
 * can drop the copies. A send that fails leaves its row as it was.
 */
export async function sendWelcomes(db: Db, mailer: Mailer, emails: WelcomeEmail[], domain: string, chunkSize = SEND_CHUNK): Promise<SendOutcome[]> {
  const outcomes: SendOutcome[] = [];
  for (let start = 0; start < emails.length; start += chunkSize) {
    const chunk = emails.slice(start, start + chunkSize);
    outcomes.push(...(await db.transaction((tx) => sendChunk(tx as unknown as Db, mailer, chunk, domain))));
  }
  return outcomes;
}

async function sendChunk(tx: Db, mailer: Mailer, chunk: WelcomeEmail[], domain: string): Promise<SendOutcome[]> {
  const { rows } = await tx.execute<{ registration_id: number; status: string; message_id: string | null }>(sql`
    select registration_id, status, message_id from email_sends
    where kind = ${KIND} and registration_id in (select value::int from jsonb_array_elements_text(${idsJson(chunk)}::jsonb))
    order by registration_id
    for update`);
  const sentBefore = new Map(rows.filter((r) => r.status === "sent").map((r) => [r.registration_id, r.message_id]));
  const outcomes = await Promise.all(
    chunk.map(async (email): Promise<SendOutcome> => {
      const { registrationId } = email;
      const messageId = welcomeMessageId(registrationId, domain);
      if (sentBefore.has(registrationId)) return { registrationId, messageId: sentBefore.get(registrationId) ?? messageId, sent: false };
      try {
        await mailer.send({ to: email.email, subject: WELCOME_SUBJECT, text: welcomeText(email.name), messageId });
        return { registrationId, messageId, sent: true };
      } catch (err) {
        return { registrationId, ...describeSendError(err) };
      }
    }),
  );
  const sent = chunk.filter((_, k) => { const o = outcomes[k]!; return "sent" in o && o.sent; });
  if (sent.length) {
    // An upsert: an email job from before the outbox has no row yet.
    const values = JSON.stringify(sent.map((e) => ({ registration_id: e.registrationId, recipient: e.email, message_id: welcomeMessageId(e.registrationId, domain) })));
    await tx.execute(sql`
      insert into email_sends (registration_id, kind, recipient, message_id, status, sent_at, updated_at)
      select registration_id, ${KIND}, recipient, message_id, 'sent', now(), now()
      from jsonb_to_recordset(${values}::jsonb) as t(registration_id int, recipient text, message_id text)
      on conflict (registration_id, kind) do update
        set status = 'sent', recipient = excluded.recipient, message_id = excluded.message_id, error = null, sent_at = now(), updated_at = now()`);
  }
  return outcomes;
}

/** Retries ran out, or the server refused for good: the rows say so, for whoever looks in PostgreSQL. */
async function recordFailures(db: Db, failed: { email: WelcomeEmail; reason: string }[], domain: string): Promise<void> {
  const values = JSON.stringify(
    failed.map(({ email, reason }) => ({ registration_id: email.registrationId, recipient: email.email, message_id: welcomeMessageId(email.registrationId, domain), error: reason })),
  );
  await db.execute(sql`
    insert into email_sends (registration_id, kind, recipient, message_id, status, error, updated_at)
    select registration_id, ${KIND}, recipient, message_id, 'failed', error, now()
    from jsonb_to_recordset(${values}::jsonb) as t(registration_id int, recipient text, message_id text, error text)
    on conflict (registration_id, kind) do update
      set status = 'failed', error = excluded.error, updated_at = now()
      where email_sends.status <> 'sent'`);
}

// What a job reports says what became of its emails: handed to the SMTP server ("sent"),
// or only written to the log without SMTP_URL ("logged").
type WelcomeBatchResult =
  | { sent: number; sentBefore: number; failed: { registrationId: number; reason: string }[] }
  | { logged: number; loggedBefore: number; failed: { registrationId: number; reason: string }[] };
type WelcomeResult = { registrationId: number; messageId: string } & ({ sent: boolean } | { logged: boolean });

type EmailProcessorDeps = BaseDeps & {
  db: Db;
  mailer: Mailer;
  domain: string;
  /** The emails queue, where an email that fails for good becomes a job of its own. */
  queue: Pick<Queue, "addBulk">;
};

export function createEmailProcessor(deps: EmailProcessorDeps) {
  const spill = (emails: WelcomeEmail[]) =>
    deps.queue.addBulk(
      emails.map((e) => ({ name: WELCOME_EMAIL_JOB, data: welcomeEmailData(e) as never, opts: { ...emailJobOptions({ attempts: 1, delayMs: 1 }), jobId: welcomeEmailJobId(e.registrationId) } })),
    );

  const handle = async (emails: WelcomeEmail[], job: Job, scope: JobScope): Promise<WelcomeResult | WelcomeBatchResult> => {
    const single = job.name === WELCOME_EMAIL_JOB;
    const last = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    const spans = traceEmails(job.id, emails, deps.mailer, deps.domain);
    let outcomes: SendOutcome[];
    try {
      outcomes = spans
        ? await spans.inJob(() => sendWelcomes(deps.db, spans.mailer, emails, deps.domain))
        : await sendWelcomes(deps.db, deps.mailer, emails, deps.domain);
    } catch (err) {
      spans?.end(undefined, err);
      throw err;
    }
    spans?.end(outcomes);

    let sent = 0;
    let sentBefore = 0;
    const forGood: { email: WelcomeEmail; reason: string }[] = [];
    const retry: { email: WelcomeEmail; reason: string }[] = [];
    outcomes.forEach((o, k) => {
      if ("sent" in o) {
        if (o.sent) sent++;
        else sentBefore++;
        return;
      }
      (o.permanent || last ? forGood : retry).push({ email: emails[k]!, reason: o.reason });
    });
    // Only what an SMTP server took counts as sent.
    if (deps.mailer.kind === "smtp") deps.metrics.emailsSent.inc({ email: KIND }, sent);
    const outcome = forGood.length ? "failed" : retry.length ? "retry" : "completed";
    scope.settled(job.name, outcome);
    if (forGood.length) deps.metrics.emailFailures.inc({ email: KIND, kind: "final" }, forGood.length);
    if (retry.length) deps.metrics.emailFailures.inc({ email: KIND, kind: "transient" }, retry.length);
    const log = deps.log.child({ jobId: job.id, jobName: job.name, ...(single && emails[0]!.requestId ? { requestId: emails[0]!.requestId } : {}) });
    if (sent + sentBefore > 0) log.info({ sent, sentBefore, transport: deps.mailer.kind }, "welcome emails done");

    if (forGood.length) {
      for (const { email, reason } of forGood) log.error({ registrationId: email.registrationId, requestId: email.requestId, reason, attempts: job.attemptsMade + 1, ...traceFieldsOf(email.trace) }, "welcome email failed for good");
      await recordFailures(deps.db, forGood, deps.domain).catch((err) => log.warn({ err }, "could not record the failures"));
    }
    const logged = deps.mailer.kind === "log";
    if (single) {
      const o = outcomes[0]!;
      if ("sent" in o) return logged ? { registrationId: o.registrationId, messageId: o.messageId, logged: o.sent } : o;
      if (!forGood.length) log.warn({ registrationId: o.registrationId, reason: o.reason, attempt: job.attemptsMade + 1 }, "welcome email not sent, will retry");
      throw o.permanent ? new UnrecoverableError(o.reason) : new Error(o.reason);
    }
    // Each email that failed for good becomes a job of its own that Bull Board shows
    // failed with its reason; a retry there sends it.
    if (forGood.length) await spill(forGood.map((f) => f.email));
    if (retry.length) {
      log.warn({ emails: retry.length, reason: retry[0]!.reason, attempt: job.attemptsMade + 1 }, "welcome emails not sent, will retry");
      throw new Error(`${retry.length} of ${emails.length} emails not sent: ${retry[0]!.reason}`);
    }
    const failed = forGood.map(({ email, reason }) => ({ registrationId: email.registrationId, reason }));
    return logged ? { logged: sent, loggedBefore: sentBefore, failed } : { sent, sentBefore, failed };
  };

  return createLaneProcessor({ queue: EMAILS_QUEUE, read: readEmails, handle }, deps);
}

/** The emails a job holds; a bad payload comes only from a foreign producer, and no retry fixes it. */
function readEmails(job: Job): WelcomeEmail[] | undefined {
  const emails = emailsOf(job);
  for (const email of emails ?? []) {
    const { requestId: _r, trace: _t, ...payload } = email;
    const checked = check(ZWelcomeEmailJob, payload);
    if (!checked.ok) {
      const detail = checked.errors.map((e) => `${e.path} ${e.message}`).join("; ");
      throw new UnrecoverableError(`INVALID_PAYLOAD: invalid payload: ${detail}`);
    }
  }
  return emails;
}
