// The welcome email dispatcher: moves pending rows of the email_sends outbox into emails jobs.
import { throttled, withTimeout } from "@ingest/runtime";
import type { Db } from "@ingest/db";
import { emailJobOptions, welcomeBatchJobId, WELCOME_BATCH_JOB, type EmailRetry, type WelcomeBatchData } from "@ingest/jobs";
import type { TraceCarrier } from "@ingest/telemetry";
import type { Queue } from "bullmq";
import { sql } from "drizzle-orm";
import type { Logger } from "../logger.js";
import type { WorkerMetrics } from "../metrics.js";

// Rows per transaction: one addBulk and one update for all of them.
const DISPATCH_BATCH_SIZE = 500;
// Emails per job: a job's sends share its transactions and its retries.
export const EMAILS_PER_JOB = 100;
// Redis that does not take the jobs in this long fails the dispatch: the rows stay
// pending and the next poll adds them again, under the same job ids.
const ADD_TIMEOUT_MS = 5_000;

type WelcomeDispatcherDeps = {
  db: Db;
  /** The emails queue; only addBulk is used. */
  queue: Pick<Queue, "addBulk">;
  retry: EmailRetry;
  intervalMs: number;
  /** Pending rows younger than this are left to the relay (relay.ts). */
  afterMs: number;
  log: Logger;
  metrics: WorkerMetrics;
  batchSize?: number;
  emailsPerJob?: number;
};

type WelcomeDispatcher = {
  /** One transaction: moves up to batchSize pending welcome emails to the emails queue; answers how many. */
  dispatchOnce(): Promise<number>;
  /** Polls every intervalMs, at once again after a full batch. */
  start(): void;
  /** Stops polling and waits for the dispatch in flight. */
  close(): Promise<void>;
};

const ignore = () => {};

type PendingRow = { registration_id: number; recipient: string; name: string; request_id: string | null; trace_context: TraceCarrier | null };

/**
 * Sweeps up the welcome emails the relay missed: rows of the email_sends outbox still
 * pending afterMs after they were written (the relay hands the others to the emails
 * queue at their commit). One dispatch locks up to batchSize pending rows (skip locked: processes
 * dispatching at the same time take different rows), adds them as jobs of up to
 * emailsPerJob emails in one addBulk, marks the rows "queued" and commits. An add that
 * fails rolls back, and the rows wait for the next poll. A crash between the add and the
 * commit leaves them pending with their jobs in Redis: the next dispatch of the same
 * rows adds the same job ids (they follow from the registrations), which BullMQ ignores
 * while the job is there; after it is gone, the email_sends rows keep a sent email from
 * going twice.
 */
export function createWelcomeDispatcher(deps: WelcomeDispatcherDeps): WelcomeDispatcher {
  const limit = deps.batchSize ?? DISPATCH_BATCH_SIZE;
  const perJob = deps.emailsPerJob ?? EMAILS_PER_JOB;
  const opts = emailJobOptions(deps.retry);
  // An add that timed out may still land. Until it settles, another add would only
  // queue up behind it in the Redis client (which holds commands while Redis is away).
  let unsettledAdd: Promise<void> | undefined;

  async function dispatchOnce(): Promise<number> {
    if (unsettledAdd) return 0;
    const count = await deps.db.transaction(async (tx) => {
      const { rows } = await tx.execute<PendingRow>(sql`
        select e.registration_id, e.recipient, r.name, e.request_id, e.trace_context
        from email_sends e
        join registrations r on r.id = e.registration_id
        where e.status = 'pending' and e.kind = 'welcome'
          and e.updated_at < now() - make_interval(secs => ${deps.afterMs / 1_000})
        order by e.registration_id
        limit ${limit}
        for update of e skip locked`);
      if (rows.length === 0) return 0;
      const jobs = [];
      for (let start = 0; start < rows.length; start += perJob) {
        const part = rows.slice(start, start + perJob);
        const data: WelcomeBatchData = {
          emails: part.map((r) => ({
            registrationId: r.registration_id,
            email: r.recipient,
            name: r.name,
            ...(r.request_id ? { requestId: r.request_id } : {}),
            ...(r.trace_context ? { trace: r.trace_context } : {}),
          })),
        };
        jobs.push({ name: WELCOME_BATCH_JOB, data: data as never, opts: { ...opts, jobId: welcomeBatchJobId(part.map((r) => r.registration_id)) } });
      }
      const add = deps.queue.addBulk(jobs);
      const settling: Promise<void> = add.then(ignore, ignore).then(() => {
        if (unsettledAdd === settling) unsettledAdd = undefined;
      });
      unsettledAdd = settling;
      await withTimeout(add, ADD_TIMEOUT_MS, "queue addBulk");
      const ids = JSON.stringify(rows.map((r) => r.registration_id));
      await tx.execute(sql`
        update email_sends set status = 'queued', updated_at = now()
        where kind = 'welcome' and status = 'pending'
          and registration_id in (select value::int from jsonb_array_elements_text(${ids}::jsonb))`);
      return rows.length;
    });
    if (count > 0) {
      deps.metrics.emailsDispatched.inc({ email: "welcome" }, count);
      if (deps.log.isLevelEnabled("debug")) deps.log.debug({ count }, "welcome emails dispatched");
    }
    return count;
  }

  const warn = throttled((err: unknown) => deps.log.warn({ err }, "could not dispatch welcome emails; they stay pending and are tried again"));
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;
  const tick = () => {
    timer = undefined;
    inFlight = dispatchOnce().then(
      (count) => {
        inFlight = undefined;
        if (!stopped) timer = setTimeout(tick, count >= limit ? 0 : deps.intervalMs);
      },
      (err) => {
        warn(err);
        inFlight = undefined;
        if (!stopped) timer = setTimeout(tick, deps.intervalMs);
      },
    );
  };

  return {
    dispatchOnce,
    start() {
      if (!stopped && !timer && !inFlight) timer = setTimeout(tick, 0);
    },
    async close() {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
      await inFlight;
    },
  };
}
