// Welcome email jobs. The email lane's dispatcher moves the emails registrations owe
// (their email_sends outbox rows) to the emails queue in batch jobs, many emails each;
// an email that fails for good becomes a job of its own (`eml-welcome-<registrationId>`),
// so Bull Board shows it with its reason and a retry there sends it.
import { createHash } from "node:crypto";
import type { TraceCarrier } from "@ingest/telemetry";
import type { JobsOptions } from "bullmq";
import { JOB_ID_PREFIX } from "./definitions.js";
import type { TWelcomeEmailJob } from "./payloads.js";

/** One email's job. */
export const WELCOME_EMAIL_JOB = "email.welcome";
/** A batch of emails in one job. */
export const WELCOME_BATCH_JOB = "email.welcome-batch";

/** What an email job stores: the payload, and the request id and trace context of the write that led to it. */
type EmailJobData = { payload: TWelcomeEmailJob; requestId?: string; trace?: TraceCarrier };

export type WelcomeEmail = TWelcomeEmailJob & { requestId?: string; trace?: TraceCarrier };
export type WelcomeBatchData = { emails: WelcomeEmail[] };

/** The emails a job of the emails queue holds, or undefined for a job that is not one. */
export function emailsOf(job: { name: string; data: unknown }): WelcomeEmail[] | undefined {
  if (job.name === WELCOME_BATCH_JOB) {
    const emails = (job.data as Partial<WelcomeBatchData> | null)?.emails;
    return Array.isArray(emails) ? emails : undefined;
  }
  if (job.name !== WELCOME_EMAIL_JOB) return undefined;
  const data = job.data as Partial<EmailJobData> | null;
  return data?.payload ? [{ ...data.payload, ...(data.requestId ? { requestId: data.requestId } : {}), ...(data.trace ? { trace: data.trace } : {}) }] : undefined;
}

/** One email's own job: one id per registration. */
export const welcomeEmailJobId = (registrationId: number) => `${JOB_ID_PREFIX.emails}-welcome-${registrationId}`;

/**
 * A batch's id follows from the registrations it holds: a dispatch repeated after a
 * crash before its commit adds the same batch again, a no-op while the job is in Redis.
 * After it has been removed, the email_sends rows keep a sent email from going twice.
 */
export function welcomeBatchJobId(registrationIds: number[]): string {
  const digest = createHash("sha256").update(registrationIds.join(",")).digest("base64url").slice(0, 22);
  return `${JOB_ID_PREFIX.emails}-welcome-batch-${digest}`;
}

export type EmailRetry = { attempts: number; delayMs: number };

/** Retries ride out an SMTP server that is down: exponential, from delayMs. */
export const emailJobOptions = (retry: EmailRetry): JobsOptions => ({
  attempts: retry.attempts,
  backoff: { type: "exponential", delay: retry.delayMs },
});

/** An email as a job of its own (data as WELCOME_EMAIL_JOB takes it). */
export function welcomeEmailData(email: WelcomeEmail): EmailJobData {
  const { requestId, trace, ...payload } = email;
  return { payload, ...(requestId ? { requestId } : {}), ...(trace ? { trace } : {}) };
}
