import { createBulkAdder, welcomeEmailRequest, type EmailRetry, type TWelcomeEmailJob } from "@ingest/jobs";
import type { Queue } from "bullmq";

export type FollowUps = {
  /**
   * After a write job committed, before it reports completed: adds the jobs its outcome
   * calls for. Throws when they could not be added, so the write job is retried; the
   * retry answers its first outcome from the ledger and adds them then.
   */
  afterCommit(jobName: string, payload: unknown, result: unknown, requestId?: string): Promise<void>;
};

// As the API's adds: Redis that does not take a job in this long fails the attempt.
const ADD_TIMEOUT_MS = 5_000;

/** The welcome email a write owes: only a registration that created its row. */
export function welcomeEmailOf(jobName: string, payload: unknown, result: unknown): TWelcomeEmailJob | undefined {
  if (jobName !== "registration.create") return undefined;
  const outcome = result as { registrationId?: unknown; outcome?: unknown } | null;
  if (outcome?.outcome !== "created" || !Number.isInteger(outcome.registrationId)) return undefined;
  const { email, name } = (payload as { registration: { email: string; name: string } }).registration;
  return { registrationId: outcome.registrationId as number, email, name };
}

/**
 * The decision to send commits with the registration: the registration's ledger row
 * says "created", and until the email job is in Redis the registration job is not
 * completed, so a crash in between makes BullMQ run it again. The email job's id is
 * derived from the registration, so adding it twice leaves one job. The adds of jobs
 * finishing together (one micro-batch) go to Redis as one addBulk.
 */
export function createFollowUps(emails: Queue, retry: EmailRetry): FollowUps {
  const add = createBulkAdder(emails, { timeoutMs: ADD_TIMEOUT_MS });
  return {
    async afterCommit(jobName, payload, result, requestId) {
      const welcome = welcomeEmailOf(jobName, payload, result);
      if (welcome) await add(welcomeEmailRequest(welcome, retry, requestId));
    },
  };
}
