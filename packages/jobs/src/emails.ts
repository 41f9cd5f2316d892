import type { JobsOptions } from "bullmq";
import type { AddRequest } from "./bulk-add.js";
import { JOB_ID_PREFIX } from "./definitions.js";
import type { TWelcomeEmailJob } from "./payloads.js";

export const WELCOME_EMAIL_JOB = "email.welcome";

/** What an email job stores: the payload, and the request id of the write that led to it. */
export type EmailJobData = { payload: TWelcomeEmailJob; requestId?: string };

/**
 * One id per registration: adding the job again (a dispatch repeated after a crash
 * before its commit) is a no-op while the job is in Redis. After it has been removed,
 * the worker's email_sends row is what keeps a second job from sending again.
 */
export const welcomeEmailJobId = (registrationId: number) => `${JOB_ID_PREFIX.emails}-welcome-${registrationId}`;

export type EmailRetry = { attempts: number; delayMs: number };

/** Retries ride out an SMTP server that is down: exponential, from delayMs. */
export const emailJobOptions = (retry: EmailRetry): JobsOptions => ({
  attempts: retry.attempts,
  backoff: { type: "exponential", delay: retry.delayMs },
});

export function welcomeEmailRequest(payload: TWelcomeEmailJob, retry: EmailRetry, requestId?: string): AddRequest {
  const data: EmailJobData = { payload, ...(requestId ? { requestId } : {}) };
  return { name: WELCOME_EMAIL_JOB, data, jobId: welcomeEmailJobId(payload.registrationId), opts: emailJobOptions(retry) };
}
