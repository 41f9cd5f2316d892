import { sql } from "drizzle-orm";
import { welcomeEmailJobId, WELCOME_BATCH_JOB, type WelcomeBatchData } from "@ingest/jobs";
import { afterAll, describe, expect, it } from "vitest";
import { request, spawnWorker, startApi, testEnv, waitFor, waitForJob, type Api, type WorkerProcess } from "./support/harness.js";
import { freePort } from "./support/private-redis.js";
import { createScratchDb } from "./support/scratch-db.js";
import { createSmtpSink, type SmtpSink } from "./support/smtp-sink.js";

// A database of this file's own: every worker running the email lane dispatches the
// pending welcome emails it finds in its database, so the other files' workers (other
// queue prefixes, no SMTP sink) must not see these registrations, nor ours theirs.
const scratch = await createScratchDb("welcome_e2e");
const { db } = scratch;
const DB = { DATABASE_URL: scratch.url };
afterAll(() => scratch.drop());

const DOMAIN = "welcome.test";
const MAIL = { MAIL_FROM: `Ingest <hello@${DOMAIN}>` };
// Short locks so a killed worker's job comes back within the test's patience.
const FAST_RECOVERY = { LOCK_DURATION_MS: "2000", STALLED_INTERVAL_MS: "1000" };
const messageIdOf = (registrationId: number) => `<welcome-${registrationId}@${DOMAIN}>`;

/** An API, a sink and workers of one scenario, under a queue prefix of its own. */
async function scenario(name: string, run: (s: { api: Api; sink: SmtpSink; workers: WorkerProcess[]; prefix: string }) => Promise<void>) {
  const { prefix } = testEnv(name);
  const api = await startApi(prefix, DB);
  const sink = createSmtpSink(await freePort());
  const workers: WorkerProcess[] = [];
  try {
    await run({ api, sink, workers, prefix });
  } catch (err) {
    for (const w of workers) console.log(w.output().slice(-4_000));
    throw err;
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await sink.close();
    await api.close();
  }
}

async function register(api: Api, email: string, name = "Ada") {
  const r = await request(api.url, "POST", "/registrations", { json: { email, name } });
  expect(r.status, r.text).toBe(202);
  const job = await waitForJob(api.url, r.body.jobId);
  expect(job.state).toBe("completed");
  return job.result as { registrationId: number; outcome: "created" | "duplicate" };
}

const ALL_STATES = ["waiting", "delayed", "active", "completed", "failed"] as const;
/** The batch job carrying a registration's welcome email. */
const emailJob = async (api: Api, registrationId: number) => {
  const jobs = await api.runtime.deps.queues.emails.getJobs([...ALL_STATES]);
  return jobs.find((j) => j.name === WELCOME_BATCH_JOB && (j.data as WelcomeBatchData).emails.some((e) => e.registrationId === registrationId));
};
/** Emails held by the batch jobs of the emails queue. */
const emailsQueued = async (api: Api) =>
  (await api.runtime.deps.queues.emails.getJobs([...ALL_STATES])).filter((j) => j.name === WELCOME_BATCH_JOB).reduce((n, j) => n + (j.data as WelcomeBatchData).emails.length, 0);
const sendRow = async (registrationId: number) =>
  (await db.execute<{ status: string; error: string | null }>(sql`select status, error from email_sends where registration_id = ${registrationId}`)).rows;

describe("welcome email", () => {
  it("a new registration gets exactly one email; a duplicate in another case gets none", async () => {
    await scenario("welcome", async ({ api, sink, workers, prefix }) => {
      await sink.listen();
      workers.push(await spawnWorker(prefix, { ...DB, ...MAIL, SMTP_URL: sink.url }));

      const first = await register(api, "Grace@example.com", "Grace");
      expect(first.outcome).toBe("created");
      const messageId = messageIdOf(first.registrationId);
      await waitFor(() => sink.count(messageId) === 1, 10_000, "the welcome email");
      expect(sink.messages.find((m) => m.messageId === messageId)).toMatchObject({
        from: `hello@${DOMAIN}`,
        to: ["Grace@example.com"],
        subject: "Welcome to ingest",
      });
      await waitFor(async () => (await emailJob(api, first.registrationId))?.finishedOn, 5_000, "the email job to finish");
      expect(await (await emailJob(api, first.registrationId))!.getState()).toBe("completed");
      expect(await sendRow(first.registrationId)).toEqual([{ status: "sent", error: null }]);

      const again = await register(api, "grace@EXAMPLE.com", "Grace Again");
      expect(again).toEqual({ registrationId: first.registrationId, outcome: "duplicate" });
      // A later registration's email arriving shows the worker has moved past the duplicate.
      const other = await register(api, "hopper@example.com", "Hopper");
      await waitFor(() => sink.count(messageIdOf(other.registrationId)) === 1, 10_000, "the next welcome email");
      expect(sink.count(messageId)).toBe(1);
      expect(sink.messages.filter((m) => m.to.some((to) => to.toLowerCase() === "grace@example.com"))).toHaveLength(1);
      expect(await emailsQueued(api)).toBe(2);

      // Email jobs are the operators' business (Bull Board), not answered by id to clients.
      expect((await request(api.url, "GET", `/jobs/${welcomeEmailJobId(first.registrationId)}`)).status).toBe(404);
    });
  });

  it("while the SMTP server is down the email is retried with backoff, and sent once when it is back", async () => {
    await scenario("welcome-down", async ({ api, sink, workers, prefix }) => {
      workers.push(await spawnWorker(prefix, { ...DB, ...MAIL, SMTP_URL: sink.url, EMAIL_RETRY_DELAY_MS: "200", EMAIL_ATTEMPTS: "20" }));
      const { registrationId } = await register(api, "lovelace@example.com");
      await waitFor(async () => ((await emailJob(api, registrationId))?.attemptsMade ?? 0) >= 2, 10_000, "two failed attempts");
      const job = (await emailJob(api, registrationId))!;
      expect(["delayed", "waiting", "active"]).toContain(await job.getState());
      expect(job.failedReason).toMatch(/^1 of 1 emails not sent: SMTP_UNAVAILABLE: connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
      expect(sink.messages).toHaveLength(0);

      await sink.listen();
      await waitFor(() => sink.count(messageIdOf(registrationId)) === 1, 15_000, "the email once the server is up");
      await waitFor(async () => (await (await emailJob(api, registrationId))!.getState()) === "completed", 5_000, "the job to complete");
      expect(sink.messages).toHaveLength(1);
      expect(await sendRow(registrationId)).toEqual([{ status: "sent", error: null }]);
    });
  });

  it("when the retries run out the email becomes a failed job of its own with the SMTP reason, as Bull Board shows it", async () => {
    await scenario("welcome-fail", async ({ api, sink, workers, prefix }) => {
      workers.push(await spawnWorker(prefix, { ...DB, ...MAIL, SMTP_URL: sink.url, EMAIL_RETRY_DELAY_MS: "100", EMAIL_ATTEMPTS: "3" }));
      const { registrationId } = await register(api, "hamilton@example.com");
      const own = () => api.runtime.deps.queues.emails.getJob(welcomeEmailJobId(registrationId));
      await waitFor(async () => (await (await own())?.getState()) === "failed", 10_000, "the email's own job to fail");
      const batch = (await emailJob(api, registrationId))!;
      expect(batch.attemptsMade).toBe(3);
      expect(await batch.getState()).toBe("completed");
      const job = (await own())!;
      expect(job.failedReason).toMatch(/^SMTP_UNAVAILABLE: connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
      expect(await api.runtime.deps.queues.emails.getFailedCount()).toBe(1);
      const [row] = await sendRow(registrationId);
      expect(row).toMatchObject({ status: "failed", error: expect.stringMatching(/^SMTP_UNAVAILABLE: /) });

      // Retried there once the server is up, it sends.
      await sink.listen();
      await job.retry("failed");
      await waitFor(() => sink.count(messageIdOf(registrationId)) === 1, 10_000, "the email after the retry");
      await waitFor(async () => (await sendRow(registrationId))[0]?.status === "sent", 5_000, "the row to say sent");
    });
  });

  it("a worker SIGKILLed while the server holds the end of DATA leaves one email, sent by the next worker", async () => {
    await scenario("welcome-kill", async ({ api, sink, workers, prefix }) => {
      await sink.listen();
      sink.hold(true);
      const victim = await spawnWorker(prefix, { ...DB, ...MAIL, ...FAST_RECOVERY, SMTP_URL: sink.url });
      workers.push(victim);
      const { registrationId } = await register(api, "turing@example.com");
      await waitFor(() => sink.held === 1, 10_000, "the message to reach the end of DATA");
      victim.proc.kill("SIGKILL");
      await victim.exited;
      // The server saw its client leave before it answered: the message is dropped.
      await waitFor(() => sink.held === 0, 5_000, "the server to drop the message");
      sink.hold(false);
      expect(sink.messages).toHaveLength(0);

      workers.push(await spawnWorker(prefix, { ...DB, ...MAIL, ...FAST_RECOVERY, SMTP_URL: sink.url }));
      await waitFor(() => sink.count(messageIdOf(registrationId)) === 1, 20_000, "the email from the next worker");
      await waitFor(async () => (await (await emailJob(api, registrationId))!.getState()) === "completed", 5_000, "the job to complete");
      expect(sink.messages).toHaveLength(1);
      expect(await sendRow(registrationId)).toEqual([{ status: "sent", error: null }]);
    });
  });
});
