// Hands the welcome emails owed by registrations just committed straight to the emails
// queue, so the outbox rows they wrote need no dispatch of their own; the dispatcher
// (dispatch.ts) only sweeps up rows this missed (a worker killed between the commit and
// the add, Redis away at that moment).
import { withTimeout } from "@ingest/runtime";
import type { TraceCarrier } from "@ingest/telemetry";
import { emailJobOptions, welcomeBatchJobId, WELCOME_BATCH_JOB, type EmailRetry, type RegistrationResult, type WelcomeBatchData, type WelcomeEmail } from "@ingest/jobs";
import type { Queue } from "bullmq";
import type { Logger } from "../logger.js";
import { EMAILS_PER_JOB } from "./dispatch.js";

// The worker's connection waits for Redis rather than failing; the writes must not wait with it.
const ADD_TIMEOUT_MS = 5_000;

export type Applied = { write: { name: string; payload: unknown; requestId?: string | undefined; trace?: TraceCarrier | undefined }; result: unknown };

export type WelcomeRelay = {
  /** Takes the emails owed by writes just committed; never throws. */
  add(applied: Applied[]): void;
  /** Adds what is waiting now. */
  close(): Promise<void>;
};

/** The welcome emails owed by registrations just committed: one per registration created (a duplicate owes none). */
function welcomeEmailsOf(applied: Applied[]): WelcomeEmail[] {
  const emails: WelcomeEmail[] = [];
  for (const { write, result } of applied) {
    if (write.name !== "registration.create") continue;
    const r = result as RegistrationResult | null;
    if (r?.outcome !== "created") continue;
    const { registration } = write.payload as { registration: { email: string; name: string } };
    emails.push({
      registrationId: r.registrationId,
      email: registration.email,
      name: registration.name,
      ...(write.requestId ? { requestId: write.requestId } : {}),
      // The email continues the trace of the write that owes it.
      ...(write.trace ? { trace: write.trace } : {}),
    });
  }
  return emails;
}

/**
 * Gathers the emails of the commits of waitMs (or up to EMAILS_PER_JOB of them) into one
 * batch job, its id following from the registrations it holds (a redelivered carrier
 * gives the same emails again: they may land in another batch, whose sends find them
 * sent). An add that fails leaves the rows pending, for the dispatcher's sweep, as does
 * a worker killed before its batch was added.
 */
export function createWelcomeRelay(deps: { queue: Pick<Queue, "addBulk">; retry: EmailRetry; log: Logger; waitMs: number }): WelcomeRelay {
  const opts = emailJobOptions(deps.retry);
  let waiting: WelcomeEmail[] = [];
  let timer: NodeJS.Timeout | undefined;
  const inFlight = new Set<Promise<void>>();

  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (waiting.length === 0) return;
    const emails = waiting;
    waiting = [];
    const data: WelcomeBatchData = { emails };
    const job = { name: WELCOME_BATCH_JOB, data: data as never, opts: { ...opts, jobId: welcomeBatchJobId(emails.map((e) => e.registrationId)) } };
    const added: Promise<void> = withTimeout(deps.queue.addBulk([job]), ADD_TIMEOUT_MS, "queue addBulk").then(
      () => void inFlight.delete(added),
      (err: unknown) => {
        inFlight.delete(added);
        deps.log.warn({ err, emails: emails.length }, "could not queue welcome emails; the dispatcher sends them later");
      },
    );
    inFlight.add(added);
  };

  return {
    add(applied) {
      for (const email of welcomeEmailsOf(applied)) {
        waiting.push(email);
        if (waiting.length >= EMAILS_PER_JOB) flush();
      }
      if (waiting.length && !timer) timer = setTimeout(flush, deps.waitMs);
    },
    async close() {
      flush();
      await Promise.all(inFlight);
    },
  };
}
