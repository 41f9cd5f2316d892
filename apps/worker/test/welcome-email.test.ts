import { emailSends } from "@ingest/db";
import {
  closeQueues,
  createQueues,
  createWorkerConnection,
  welcomeEmailJobId,
  WELCOME_EMAIL_JOB,
  type EmailJobData,
  type JobData,
} from "@ingest/jobs";
import type { Job } from "bullmq";
import { eq } from "drizzle-orm";
import { randomUUID } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { testDb, testEnv } from "../../../test/support/harness.js";
import { freePort } from "../../../test/support/private-redis.js";
import { createSmtpSink } from "../../../test/support/smtp-sink.js";
import { applyJob } from "../src/apply.js";
import { createFollowUps } from "../src/email/follow-ups.js";
import { createMailer, describeSendError, domainOf } from "../src/email/mailer.js";
import { createEmailProcessor, sendWelcomeOnce } from "../src/email/welcome.js";
import { loadEnv } from "../src/env.js";
import { createLogger } from "../src/logger.js";
import { createWorkerMetrics } from "../src/metrics.js";
import { createProcessor } from "../src/processor.js";
import { envelope } from "./support/envelope.js";

const { db, close } = testDb();
const { prefix, redisUrl } = testEnv("welcome-unit");
const connection = createWorkerConnection(redisUrl);
const queues = createQueues(connection, prefix, () => {});
const log = createLogger("silent", false);
afterAll(async () => {
  await closeQueues(queues);
  await connection.quit();
  await close();
});

const RETRY = { attempts: 3, delayMs: 100 };
const emailOf = (tag: string) => `${tag}-${randomUUID().slice(0, 8)}@unit.example.com`;

/** A registration committed through the real applier: the row the email belongs to. */
async function register(email: string, name = "Nia") {
  const outcome = await applyJob(db, envelope("registration.create", { registration: { email, name } }));
  if (outcome.status !== "completed") throw new Error("registration failed");
  return (outcome.result as { registrationId: number }).registrationId;
}

/** The worker's processor for a queue, applying one job at a time, with real follow-ups. */
const processorFor = (queue: "registrations" | "products") =>
  createProcessor(queue, {
    db,
    apply: (job) => applyJob(db, job),
    queues,
    redis: connection,
    prefix,
    log,
    metrics: createWorkerMetrics(),
    orderWaitMaxMs: 60_000,
    catalog: { afterCommit: async () => {}, close: async () => {} },
    followUps: createFollowUps(queues.emails, RETRY),
  });

describe("the follow-up after a registration", () => {
  const processor = processorFor("registrations");
  /** A real job in Redis, run through the processor as a worker would run it. */
  const registrationJob = async (email: string) => {
    const data: JobData<"registration.create"> = { payload: { registration: { email, name: "Ola" } }, requestId: "req-1" };
    return (await queues.registrations.add("registration.create", data, { jobId: `reg-${randomUUID()}` })) as Job<JobData>;
  };

  it("adds one welcome email job for a created registration, however often the job runs", async () => {
    const email = emailOf("created");
    const job = await registrationJob(email);
    const first = (await processor(job)) as { registrationId: number; outcome: string };
    expect(first.outcome).toBe("created");
    // A redelivery answers "created" from the ledger and adds the same job id again.
    expect(await processor(job)).toEqual(first);
    expect(await processor(job)).toEqual(first);

    const emailJob = await queues.emails.getJob(welcomeEmailJobId(first.registrationId));
    expect(emailJob?.name).toBe(WELCOME_EMAIL_JOB);
    expect(emailJob?.data).toEqual({ payload: { registrationId: first.registrationId, email, name: "Ola" }, requestId: "req-1" });
    expect(emailJob?.opts).toMatchObject({ attempts: 3, backoff: { type: "exponential", delay: 100 } });
    const all = await queues.emails.getJobs(["waiting", "delayed", "active", "completed", "failed"]);
    expect(all.filter((j) => j.data.payload.registrationId === first.registrationId)).toHaveLength(1);
  });

  it("adds nothing for a duplicate", async () => {
    const email = emailOf("dup");
    const first = (await processor(await registrationJob(email))) as { registrationId: number };
    const before = await queues.emails.getJobCountByTypes("waiting", "delayed", "active", "completed", "failed");
    const again = await processor(await registrationJob(email.toUpperCase()));
    expect(again).toEqual({ registrationId: first.registrationId, outcome: "duplicate" });
    expect(await queues.emails.getJobCountByTypes("waiting", "delayed", "active", "completed", "failed")).toBe(before);
  });

  it("adds nothing for product jobs", async () => {
    const before = await queues.emails.getJobCountByTypes("waiting", "delayed", "active", "completed", "failed");
    const data: JobData<"product.create"> = { payload: { product: { name: "p", category: "c", default_price: "1.00" } } };
    const job = (await queues.products.add("product.create", data, { jobId: `prd-${randomUUID()}` })) as Job<JobData>;
    await processorFor("products")(job);
    expect(await queues.emails.getJobCountByTypes("waiting", "delayed", "active", "completed", "failed")).toBe(before);
  });
});

describe("sending a welcome email once", () => {
  const DOMAIN = "unit.example.com";

  it("sends once with a stable Message-ID; later and concurrent runs send nothing", async () => {
    const sink = createSmtpSink(await freePort());
    await sink.listen();
    const mailer = createMailer({ smtpUrl: sink.url, from: `Ingest <hello@${DOMAIN}>`, maxConnections: 3, nodeEnv: "test" }, log);
    try {
      const email = emailOf("once");
      const registrationId = await register(email);
      const payload = { registrationId, email, name: "Nia" };
      const runs = await Promise.all([1, 2, 3].map(() => sendWelcomeOnce(db, mailer, payload, DOMAIN)));
      expect(runs.filter((r) => r.sent)).toHaveLength(1);
      expect(await sendWelcomeOnce(db, mailer, payload, DOMAIN)).toEqual({
        registrationId,
        messageId: `<welcome-${registrationId}@${DOMAIN}>`,
        sent: false,
      });
      expect(sink.messages).toHaveLength(1);
      expect(sink.messages[0]).toMatchObject({ messageId: `<welcome-${registrationId}@${DOMAIN}>`, to: [email], subject: "Welcome to ingest" });
      const [row] = await db.select().from(emailSends).where(eq(emailSends.registrationId, registrationId));
      expect(row).toMatchObject({ kind: "welcome", status: "sent", recipient: email, error: null });
      expect(row?.sentAt).toBeInstanceOf(Date);
    } finally {
      mailer.close();
      await sink.close();
    }
  });

  it("a server that is down fails the attempt with a clear reason; the last attempt is recorded; a later run sends", async () => {
    const sink = createSmtpSink(await freePort());
    const mailer = createMailer({ smtpUrl: sink.url, from: `hello@${DOMAIN}`, maxConnections: 1, nodeEnv: "test" }, log);
    const processor = createEmailProcessor({ db, mailer, domain: DOMAIN, log, metrics: createWorkerMetrics() });
    try {
      const email = emailOf("down");
      const registrationId = await register(email);
      const job = (attemptsMade: number) =>
        ({ id: welcomeEmailJobId(registrationId), name: WELCOME_EMAIL_JOB, data: { payload: { registrationId, email, name: "Nia" } }, opts: { attempts: 2 }, attemptsMade }) as Job<EmailJobData>;

      await expect(processor(job(0))).rejects.toThrow(/^SMTP_UNAVAILABLE: connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
      expect(await db.select().from(emailSends).where(eq(emailSends.registrationId, registrationId))).toEqual([]);
      await expect(processor(job(1))).rejects.toThrow(/^SMTP_UNAVAILABLE: /);
      const [failed] = await db.select().from(emailSends).where(eq(emailSends.registrationId, registrationId));
      expect(failed).toMatchObject({ status: "failed", error: expect.stringMatching(/^SMTP_UNAVAILABLE: connect ECONNREFUSED/) });

      // Retried from Bull Board once the server is back.
      await sink.listen();
      expect(await processor(job(0))).toMatchObject({ registrationId, sent: true });
      expect(sink.count(`<welcome-${registrationId}@${DOMAIN}>`)).toBe(1);
    } finally {
      mailer.close();
      await sink.close();
    }
  });

  it("a bad payload fails at once", async () => {
    const processor = createEmailProcessor({ db, mailer: createMailer({ smtpUrl: undefined, from: "a@b.c", maxConnections: 1, nodeEnv: "test" }, log), domain: "b.c", log, metrics: createWorkerMetrics() });
    const job = { id: "eml-welcome-x", name: WELCOME_EMAIL_JOB, data: { payload: { registrationId: 1, email: "nope" } }, opts: { attempts: 5 }, attemptsMade: 0 } as unknown as Job<EmailJobData>;
    await expect(processor(job)).rejects.toMatchObject({ name: "UnrecoverableError", message: expect.stringMatching(/^INVALID_PAYLOAD: /) });
  });
});

describe("mail settings", () => {
  it("rejects an SMTP_URL that is not smtp:// or smtps:// and a MAIL_FROM without an address", () => {
    expect(() => loadEnv({ SMTP_URL: "http://mail.example.com" })).toThrow(/SMTP_URL must use smtp: or smtps:/);
    expect(() => loadEnv({ MAIL_FROM: "Ingest" })).toThrow(/MAIL_FROM must be an address/);
    const env = loadEnv({ SMTP_URL: "smtps://u:p@mail.example.com:465", MAIL_FROM: "Shop <hi@shop.example>" });
    expect(env).toMatchObject({ SMTP_URL: "smtps://u:p@mail.example.com:465", EMAIL_CONCURRENCY: 5, EMAIL_ATTEMPTS: 10, EMAIL_RETRY_DELAY_MS: 5_000 });
    expect(domainOf(env.MAIL_FROM)).toBe("shop.example");
    expect(domainOf(loadEnv({}).MAIL_FROM)).toBe("localhost");
  });

  it("tells a rejected recipient (permanent) from a server that is away or deferring (retried)", () => {
    expect(describeSendError(Object.assign(new Error("Recipient command failed: 550 no such user"), { code: "EENVELOPE", responseCode: 550 }))).toEqual({
      reason: "SMTP_REJECTED: Recipient command failed: 550 no such user",
      permanent: true,
    });
    expect(describeSendError(Object.assign(new Error("451 try later"), { code: "EMESSAGE", responseCode: 451 })).permanent).toBe(false);
    expect(describeSendError(Object.assign(new Error("Greeting never received"), { code: "ETIMEDOUT" }))).toEqual({
      reason: "SMTP_UNAVAILABLE: Greeting never received",
      permanent: false,
    });
  });
});
