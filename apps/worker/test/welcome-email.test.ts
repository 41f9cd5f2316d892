import { createDb, emailSends } from "@ingest/db";
import {
  closeQueues,
  createQueues,
  createWorkerConnection,
  EMAILS_QUEUE,
  welcomeEmailJobId,
  WELCOME_EMAIL_JOB,
  type EmailJobData,
  type JobData,
} from "@ingest/jobs";
import { Queue, type Job } from "bullmq";
import { eq, sql } from "drizzle-orm";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { testEnv, waitFor } from "../../../test/support/harness.js";
import { freePort } from "../../../test/support/private-redis.js";
import { createSmtpSink } from "../../../test/support/smtp-sink.js";
import { applyJob, type JobEnvelope } from "../src/apply.js";
import { applyBatch } from "../src/apply-batch.js";
import { createWelcomeDispatcher } from "../src/email/dispatch.js";
import { createMailer, describeSendError, domainOf } from "../src/email/mailer.js";
import { createEmailProcessor, sendWelcomeOnce } from "../src/email/welcome.js";
import { loadEnv } from "../src/env.js";
import { createLogger } from "../src/logger.js";
import { createWorkerMetrics } from "../src/metrics.js";
import { createProcessor } from "../src/processor.js";
import { envelope } from "./support/envelope.js";
import { createScratchDatabase } from "./support/scratch.js";

// A database of this file's own: a dispatcher takes every pending row it finds, and
// must neither take other files' rows nor have its own taken by their workers.
const scratch = await createScratchDatabase("welcome_email");
const { db, close } = createDb(scratch.url, { max: 4, applicationName: "ingest-test" });
const { prefix, redisUrl } = testEnv("welcome-unit");
const connection = createWorkerConnection(redisUrl);
const queues = createQueues(connection, prefix, () => {});
const log = createLogger("silent", false);
afterAll(async () => {
  await closeQueues(queues);
  await connection.quit();
  await close();
  await scratch.drop();
});

const RETRY = { attempts: 3, delayMs: 100 };
const emailOf = (tag: string) => `${tag}-${randomUUID().slice(0, 8)}@unit.example.com`;
const reg = (email: string, requestId?: string, name = "Nia") =>
  envelope("registration.create", { registration: { email, name } }, requestId ? { requestId } : {});

/** A registration committed through the real applier: the row the email belongs to. */
async function register(email: string, name = "Nia") {
  const outcome = await applyJob(db, reg(email, undefined, name));
  if (outcome.status !== "completed") throw new Error("registration failed");
  return (outcome.result as { registrationId: number }).registrationId;
}

type OutboxRow = { registration_id: number; kind: string; recipient: string; status: string; message_id: string | null; request_id: string | null };
const outboxOf = async (registrationIds: number[]) =>
  (
    await db.execute<OutboxRow>(sql`
      select registration_id, kind, recipient, status, message_id, request_id from email_sends
      where registration_id in (select value::int from jsonb_array_elements_text(${JSON.stringify(registrationIds)}::jsonb))
      order by registration_id`)
  ).rows;
const pendingCount = async () => Number((await db.execute<{ n: string }>(sql`select count(*) as n from email_sends where status = 'pending'`)).rows[0]!.n);
const createdIds = (settled: { ok: boolean; value?: unknown }[]) =>
  settled.flatMap((s) => {
    const result = (s.value as { result?: { registrationId: number; outcome: string } } | undefined)?.result;
    return result?.outcome === "created" ? [result.registrationId] : [];
  });
const emailJobs = async (registrationIds: number[]) =>
  (await Promise.all(registrationIds.map((id) => queues.emails.getJob(welcomeEmailJobId(id))))).filter((j) => j !== undefined);

describe("the welcome email owed by a registration (outbox)", () => {
  const processor = createProcessor("registrations", {
    db,
    apply: (job) => applyJob(db, job),
    queues,
    redis: connection,
    prefix,
    log,
    metrics: createWorkerMetrics(),
    orderWaitMaxMs: 60_000,
    catalog: { afterCommit: async () => {}, close: async () => {} },
  });
  /** A real job in Redis, run through the processor as a worker would run it. */
  const registrationJob = async (email: string) => {
    const data: JobData<"registration.create"> = { payload: { registration: { email, name: "Ola" } }, requestId: "req-1" };
    return (await queues.registrations.add("registration.create", data, { jobId: `reg-${randomUUID()}` })) as Job<JobData>;
  };

  it("a created registration writes one pending row in its own transaction, however often its job runs, and adds nothing to Redis", async () => {
    const email = emailOf("created");
    const job = await registrationJob(email);
    const first = (await processor(job)) as { registrationId: number; outcome: string };
    expect(first.outcome).toBe("created");
    // Redeliveries answer "created" from the ledger and write nothing.
    expect(await processor(job)).toEqual(first);
    expect(await processor(job)).toEqual(first);

    expect(await outboxOf([first.registrationId])).toEqual([
      { registration_id: first.registrationId, kind: "welcome", recipient: email, status: "pending", message_id: null, request_id: "req-1" },
    ]);
    const [same] = (
      await db.execute<{ same: boolean }>(sql`
        select r.xmin::text = e.xmin::text as same from registrations r join email_sends e on e.registration_id = r.id
        where r.id = ${first.registrationId}`)
    ).rows;
    expect(same).toEqual({ same: true });
    expect(await queues.emails.getJob(welcomeEmailJobId(first.registrationId))).toBeUndefined();
  });

  it("a duplicate (the email in another case) owes nothing", async () => {
    const email = emailOf("dup");
    const first = (await processor(await registrationJob(email))) as { registrationId: number };
    const again = await processor(await registrationJob(email.toUpperCase()));
    expect(again).toEqual({ registrationId: first.registrationId, outcome: "duplicate" });
    const rows = await db.execute(sql`select 1 from email_sends where lower(recipient) = lower(${email})`);
    expect(rows.rows).toHaveLength(1);
  });

  it("a micro-batch writes a row for each registration it created, none for duplicates, and a redelivered batch adds none", async () => {
    const tag = randomUUID().slice(0, 8);
    const oldId = await register(`old-${tag}@example.com`);
    const jobs = [
      reg(`a-${tag}@example.com`, "req-a"),
      reg(`B-${tag}@example.com`, "req-b"),
      reg(`b-${tag}@EXAMPLE.com`, "req-b-twin"),
      reg(`OLD-${tag}@example.com`, "req-old"),
      reg(`c-${tag}@example.com`),
    ];
    const report = await applyBatch(db, jobs);
    expect(report.fellBack).toBe(false);
    const settled = await Promise.all(report.settled);
    const [a, b, c] = createdIds(settled);
    expect([a, b, c].every((id) => id !== undefined)).toBe(true);
    expect(await outboxOf([oldId, a!, b!, c!])).toEqual([
      { registration_id: oldId, kind: "welcome", recipient: `old-${tag}@example.com`, status: "pending", message_id: null, request_id: null },
      { registration_id: a, kind: "welcome", recipient: `a-${tag}@example.com`, status: "pending", message_id: null, request_id: "req-a" },
      { registration_id: b, kind: "welcome", recipient: `B-${tag}@example.com`, status: "pending", message_id: null, request_id: "req-b" },
      { registration_id: c, kind: "welcome", recipient: `c-${tag}@example.com`, status: "pending", message_id: null, request_id: null },
    ]);
    // The same jobs again, as redeliveries (answered from the ledger) and as first
    // deliveries (found on commit, then one by one): still one row each.
    for (const again of [jobs.map((j): JobEnvelope => ({ ...j, attemptsMade: 1, redelivered: true })), jobs]) {
      const again2 = await applyBatch(db, again);
      expect((await Promise.all(again2.settled)).map((s) => s.ok && s.value)).toEqual(settled.map((s) => s.ok && s.value));
    }
    const count = await db.execute(sql`select 1 from email_sends where recipient like ${`%-${tag}@%`}`);
    expect(count.rows).toHaveLength(4);
  });
});

describe("dispatching the outbox to the emails queue", () => {
  const metrics = createWorkerMetrics();
  const dispatcherFor = (queue: Pick<Queue, "addBulk">, batchSize?: number) =>
    createWelcomeDispatcher({ db, queue, retry: RETRY, intervalMs: 20, log, metrics, ...(batchSize ? { batchSize } : {}) });
  /** Dispatches until nothing is pending; answers how many it moved. */
  const drain = async (dispatcher: ReturnType<typeof dispatcherFor>) => {
    let total = 0;
    for (let n = await dispatcher.dispatchOnce(); n > 0; n = await dispatcher.dispatchOnce()) total += n;
    return total;
  };
  /** The emails queue, recording the ids of every addBulk made through it. */
  const recording = (before?: () => Promise<void>, after?: () => Promise<void>) => {
    const added: string[] = [];
    const queue: Pick<Queue, "addBulk"> = {
      addBulk: async (jobs) => {
        await before?.();
        const result = await queues.emails.addBulk(jobs);
        added.push(...jobs.map((j) => j.opts!.jobId!));
        await after?.();
        return result;
      },
    };
    return { queue, added };
  };
  const registerMany = async (n: number, tag: string) => {
    const report = await applyBatch(db, Array.from({ length: n }, (_, i) => reg(`${tag}-${i}-${randomUUID().slice(0, 6)}@example.com`, `req-${tag}-${i}`, `Name ${i}`)));
    return createdIds(await Promise.all(report.settled));
  };

  // Earlier tests leave rows pending; each test here starts from an empty outbox.
  beforeEach(async () => {
    await drain(dispatcherFor(queues.emails));
    expect(await pendingCount()).toBe(0);
  });

  it("adds one job per pending row, with the registration's name and request id, and marks the rows queued", async () => {
    const ids = await registerMany(3, "one");
    const before = (await metrics.emailsDispatched.get()).values[0]?.value ?? 0;
    const { queue, added } = recording();
    expect(await drain(dispatcherFor(queue))).toBe(3);
    expect(added.sort()).toEqual(ids.map(welcomeEmailJobId).sort());
    expect((await outboxOf(ids)).map((r) => r.status)).toEqual(["queued", "queued", "queued"]);
    const jobs = await emailJobs(ids);
    expect(jobs).toHaveLength(3);
    for (const [i, job] of jobs.entries()) {
      expect(job.name).toBe(WELCOME_EMAIL_JOB);
      expect(job.data).toEqual({ payload: { registrationId: ids[i], email: expect.stringMatching(new RegExp(`^one-${i}-`)), name: `Name ${i}` }, requestId: `req-one-${i}` });
      expect(job.opts).toMatchObject({ attempts: 3, backoff: { type: "exponential", delay: 100 } });
    }
    expect((await metrics.emailsDispatched.get()).values[0]?.value).toBe(before + 3);
    // Nothing pending: a dispatch adds nothing.
    expect(await dispatcherFor(queue).dispatchOnce()).toBe(0);
    expect(added).toHaveLength(3);
  });

  it("two dispatchers racing on the same rows add each job once", async () => {
    const ids = await registerMany(40, "race");
    // A slow add keeps each dispatcher's rows locked while the other one looks.
    const one = recording(() => sleep(20));
    const two = recording(() => sleep(20));
    await Promise.all([drain(dispatcherFor(one.queue, 10)), drain(dispatcherFor(two.queue, 10))]);
    expect(one.added.length).toBeGreaterThan(0);
    expect(two.added.length).toBeGreaterThan(0);
    expect(one.added.filter((id) => two.added.includes(id))).toEqual([]);
    expect([...one.added, ...two.added].sort()).toEqual(ids.map(welcomeEmailJobId).sort());
    expect(new Set((await outboxOf(ids)).map((r) => r.status))).toEqual(new Set(["queued"]));
    expect(await emailJobs(ids)).toHaveLength(40);
  });

  it("a dispatcher skips the rows another one holds instead of waiting for them", async () => {
    const ids = await registerMany(30, "skip");
    let holding!: () => void;
    const held = new Promise<void>((resolve) => (holding = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    // The first dispatcher holds its 10 rows until the second one has moved all the others.
    const one = recording(async () => {
      holding();
      await released;
    });
    const two = recording();
    const first = dispatcherFor(one.queue, 10).dispatchOnce();
    await held;
    expect(await drain(dispatcherFor(two.queue, 10))).toBe(20);
    release();
    expect(await first).toBe(10);
    // Oldest first: the first dispatcher took the 10 lowest ids, the second the rest.
    const byAge = [...ids].sort((a, b) => a - b).map(welcomeEmailJobId);
    expect(one.added).toEqual(byAge.slice(0, 10));
    expect(two.added.sort()).toEqual(byAge.slice(10).sort());
    expect(new Set((await outboxOf(ids)).map((r) => r.status))).toEqual(new Set(["queued"]));
  });

  it("an add that fails leaves the rows pending, and a later dispatch adds them", async () => {
    const ids = await registerMany(2, "fail");
    const closed = createWorkerConnection(redisUrl);
    const broken = new Queue(EMAILS_QUEUE, { connection: closed, prefix });
    broken.on("error", () => {});
    await broken.waitUntilReady();
    await closed.quit();
    try {
      await expect(dispatcherFor(broken).dispatchOnce()).rejects.toThrow(/Connection is closed/);
      expect((await outboxOf(ids)).map((r) => r.status)).toEqual(["pending", "pending"]);
      expect(await emailJobs(ids)).toEqual([]);
    } finally {
      await broken.close().catch(() => {});
    }
    expect(await drain(dispatcherFor(queues.emails))).toBe(2);
    expect((await outboxOf(ids)).map((r) => r.status)).toEqual(["queued", "queued"]);
    expect(await emailJobs(ids)).toHaveLength(2);
  });

  it("a crash between the add and the commit: the next dispatch adds the same job ids, and each job stays one", async () => {
    const ids = await registerMany(3, "crash");
    const crashing = recording(undefined, async () => {
      throw new Error("worker died before the commit");
    });
    await expect(dispatcherFor(crashing.queue).dispatchOnce()).rejects.toThrow(/worker died/);
    expect((await outboxOf(ids)).map((r) => r.status)).toEqual(["pending", "pending", "pending"]);
    const landed = await emailJobs(ids);
    expect(landed).toHaveLength(3);

    const again = recording();
    expect(await drain(dispatcherFor(again.queue))).toBe(3);
    expect(again.added.sort()).toEqual(crashing.added.sort());
    expect((await outboxOf(ids)).map((r) => r.status)).toEqual(["queued", "queued", "queued"]);
    const jobs = await emailJobs(ids);
    // The same jobs as before: the second add of an id that is in Redis was a no-op.
    expect(jobs.map((j) => [j.id, j.timestamp])).toEqual(landed.map((j) => [j.id, j.timestamp]));
    const all = await queues.emails.getJobs(["waiting", "delayed", "active", "completed", "failed"]);
    expect(all.filter((j) => ids.includes(j.data.payload.registrationId))).toHaveLength(3);
  });

  it("started, it dispatches what registrations write within its interval; close waits for the dispatch in flight", async () => {
    const { queue, added } = recording(() => sleep(50));
    const dispatcher = dispatcherFor(queue);
    dispatcher.start();
    try {
      const ids = await registerMany(2, "poll");
      await waitFor(async () => (await outboxOf(ids)).every((r) => r.status === "queued"), 5_000, "the rows to be queued");
      const later = await registerMany(1, "poll-late");
      await waitFor(() => added.includes(welcomeEmailJobId(later[0]!)), 5_000, "the add of a later row");
    } finally {
      await dispatcher.close();
    }
    // Closed after the add started: the dispatch finished and committed.
    expect(await pendingCount()).toBe(0);
    const idle = added.length;
    await registerMany(1, "after-close");
    await sleep(100);
    expect(added).toHaveLength(idle);
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
      expect(row).toMatchObject({ kind: "welcome", status: "sent", recipient: email, messageId: `<welcome-${registrationId}@${DOMAIN}>`, error: null });
      expect(row?.sentAt).toBeInstanceOf(Date);
    } finally {
      mailer.close();
      await sink.close();
    }
  });

  it("a job that runs before its dispatcher committed waits for the row, then sends once", async () => {
    const mailer = createMailer({ smtpUrl: undefined, from: `hello@${DOMAIN}`, maxConnections: 1, nodeEnv: "test" }, log);
    const registrationId = await register(emailOf("early"));
    const [{ email, name }] = (await db.execute<{ email: string; name: string }>(sql`select email, name from registrations where id = ${registrationId}`)).rows as [{ email: string; name: string }];
    let send: Promise<unknown> | undefined;
    const queue: Pick<Queue, "addBulk"> = {
      addBulk: async (jobs) => {
        const added = await queues.emails.addBulk(jobs);
        // The email lane picks the job up at once, while the dispatch has not committed.
        send ??= sendWelcomeOnce(db, mailer, { registrationId, email, name }, DOMAIN);
        await waitFor(async () => (await db.execute(sql`select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`)).rows.length > 0, 5_000, "the send to wait on the row");
        return added;
      },
    };
    const dispatcher = createWelcomeDispatcher({ db, queue, retry: RETRY, intervalMs: 20, log, metrics: createWorkerMetrics() });
    while ((await dispatcher.dispatchOnce()) > 0);
    expect(await send).toMatchObject({ registrationId, sent: true });
    expect(await outboxOf([registrationId])).toMatchObject([{ status: "sent", message_id: `<welcome-${registrationId}@${DOMAIN}>` }]);
    expect(await sendWelcomeOnce(db, mailer, { registrationId, email, name }, DOMAIN)).toMatchObject({ sent: false });
    mailer.close();
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
      // The failed attempt rolled back: the outbox row is as the registration left it.
      expect(await db.select().from(emailSends).where(eq(emailSends.registrationId, registrationId))).toMatchObject([{ status: "pending", messageId: null }]);
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
    expect(env).toMatchObject({ SMTP_URL: "smtps://u:p@mail.example.com:465", EMAIL_CONCURRENCY: 5, EMAIL_ATTEMPTS: 10, EMAIL_RETRY_DELAY_MS: 5_000, EMAIL_DISPATCH_INTERVAL_MS: 250 });
    expect(domainOf(env.MAIL_FROM)).toBe("shop.example");
    expect(domainOf(loadEnv({}).MAIL_FROM)).toBe("localhost");
    expect(() => loadEnv({ EMAIL_DISPATCH_INTERVAL_MS: "0" })).toThrow(/EMAIL_DISPATCH_INTERVAL_MS must be between/);
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
