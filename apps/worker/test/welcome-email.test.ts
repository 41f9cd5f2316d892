import { createDb, emailSends } from "@ingest/db";
import {
  closeQueues,
  createQueues,
  EMAILS_QUEUE,
  welcomeBatchJobId,
  welcomeEmailJobId,
  WELCOME_BATCH_JOB,
  WELCOME_EMAIL_JOB,
  WRITES_JOB,
  writeIdOf,
  type WelcomeBatchData,
  type WritesJobData,
} from "@ingest/jobs";
import { createWorkerConnection } from "@ingest/redis";
import { Queue, type Job } from "bullmq";
import { eq, sql } from "drizzle-orm";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { testEnv, waitFor } from "../../../test/support/harness.js";
import { freePort } from "../../../test/support/private-redis.js";
import { createSmtpSink } from "../../../test/support/smtp-sink.js";
import { applyWrite } from "../src/apply-write.js";
import { applyWrites } from "../src/apply-writes.js";
import { createWelcomeDispatcher } from "../src/email/dispatch.js";
import { createMailer, describeSendError, domainOf } from "../src/email/mailer.js";
import { createWelcomeRelay } from "../src/email/relay.js";
import { createEmailProcessor, sendWelcomes } from "../src/email/welcome.js";
import { loadEnv } from "../src/env.js";
import { createLogger } from "../src/logger.js";
import { createWorkerMetrics } from "../src/metrics.js";
import { createTurnSignal } from "../src/ordering.js";
import type { WriteEnvelope } from "../src/write.js";
import { createWritesProcessor } from "../src/writes-processor.js";
import { envelope } from "./support/envelope.js";
import { createScratchDatabase } from "../../../test/support/scratch.js";

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
const DOMAIN = "unit.example.com";
const emailOf = (tag: string) => `${tag}-${randomUUID().slice(0, 8)}@unit.example.com`;
const reg = (email: string, requestId?: string, name = "Nia") =>
  envelope("registration.create", { registration: { email, name } }, requestId ? { requestId } : {});

/** A registration committed through the real applier: the row the email belongs to. */
async function register(email: string, name = "Nia") {
  const outcome = await applyWrite(db, reg(email, undefined, name));
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
const statusesOf = async (ids: number[]) => (await outboxOf(ids)).map((r) => r.status);
const pendingCount = async () => Number((await db.execute<{ n: string }>(sql`select count(*) as n from email_sends where status = 'pending'`)).rows[0]!.n);
const createdIds = (settled: { ok: boolean; value?: unknown }[]) =>
  settled.flatMap((s) => {
    const result = (s.value as { result?: { registrationId: number; outcome: string } } | undefined)?.result;
    return result?.outcome === "created" ? [result.registrationId] : [];
  });
const registerMany = async (n: number, tag: string) => {
  const report = await applyWrites(db, Array.from({ length: n }, (_, i) => reg(`${tag}-${i}-${randomUUID().slice(0, 6)}@example.com`, `req-${tag}-${i}`, `Name ${i}`)));
  return createdIds(await Promise.all(report.settled)).sort((a, b) => a - b);
};
/** The registration ids of the welcome batch jobs in the emails queue holding these registrations. */
const batchedIds = async (ids: number[]) => {
  const jobs = await queues.emails.getJobs(["waiting", "delayed", "active", "completed", "failed"]);
  return jobs
    .filter((j) => j.name === WELCOME_BATCH_JOB)
    .flatMap((j) => (j.data as WelcomeBatchData).emails.map((e) => e.registrationId))
    .filter((id) => ids.includes(id));
};

describe("the welcome email owed by a registration (outbox)", () => {
  const processor = createWritesProcessor("registrations", {
    db,
    queues,
    orderWaitMaxMs: 60_000,
    turns: createTurnSignal(),
    chunkSize: 50,
    log,
    metrics: createWorkerMetrics(),
    catalog: { afterCommit: async () => {}, close: async () => {} },
  });
  /** A real carrier job in Redis, run through the processor as a worker would run it. */
  const carrierJob = async (emails: string[]) => {
    const id = `reg-${randomUUID()}`;
    const data: WritesJobData = {
      writes: emails.map((email, n) => ({ id: writeIdOf(id, n), name: "registration.create", payload: { registration: { email, name: "Ola" } }, requestId: `req-${n}` })),
    };
    return (await queues.registrations.add(WRITES_JOB, data, { jobId: id })) as Job;
  };
  const resultsOf = (value: unknown) => (value as { results: { state: string; result: { registrationId: number; outcome: string } }[] }).results;

  it("a created registration writes one pending row in its own transaction, however often its carrier runs", async () => {
    const email = emailOf("created");
    const job = await carrierJob([email]);
    const [first] = resultsOf(await processor(job));
    expect(first).toMatchObject({ state: "completed", result: { outcome: "created" } });
    const { registrationId } = first!.result;
    // Redeliveries answer "created" from the ledger and write nothing.
    job.attemptsMade = 1;
    expect(resultsOf(await processor(job))).toEqual([first]);
    expect(resultsOf(await processor(job))).toEqual([first]);

    expect(await outboxOf([registrationId])).toEqual([
      { registration_id: registrationId, kind: "welcome", recipient: email, status: "pending", message_id: null, request_id: "req-0" },
    ]);
    const [same] = (
      await db.execute<{ same: boolean }>(sql`
        select r.xmin::text = e.xmin::text as same from registrations r join email_sends e on e.registration_id = r.id
        where r.id = ${registrationId}`)
    ).rows;
    expect(same).toEqual({ same: true });
  });

  it("a duplicate (the email in another case, even in the same carrier) owes nothing", async () => {
    const email = emailOf("dup");
    const [first, twin] = resultsOf(await processor(await carrierJob([email, email.toUpperCase()])));
    expect(twin).toEqual({ state: "completed", result: { registrationId: first!.result.registrationId, outcome: "duplicate" } });
    const rows = await db.execute(sql`select 1 from email_sends where lower(recipient) = lower(${email})`);
    expect(rows.rows).toHaveLength(1);
  });

  it("writes of one transaction write a row for each registration they created, none for duplicates, and again none when redelivered", async () => {
    const tag = randomUUID().slice(0, 8);
    const oldId = await register(`old-${tag}@example.com`);
    const writes = [
      reg(`a-${tag}@example.com`, "req-a"),
      reg(`B-${tag}@example.com`, "req-b"),
      reg(`b-${tag}@EXAMPLE.com`, "req-b-twin"),
      reg(`OLD-${tag}@example.com`, "req-old"),
      reg(`c-${tag}@example.com`),
    ];
    const report = await applyWrites(db, writes);
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
    // The same writes again, as redeliveries (answered from the ledger) and as first
    // deliveries (found on commit, then one by one): still one row each.
    for (const again of [writes.map((w): WriteEnvelope => ({ ...w, attemptsMade: 1, redelivered: true })), writes]) {
      const again2 = await applyWrites(db, again);
      expect((await Promise.all(again2.settled)).map((s) => s.ok && s.value)).toEqual(settled.map((s) => s.ok && s.value));
    }
    const count = await db.execute(sql`select 1 from email_sends where recipient like ${`%-${tag}@%`}`);
    expect(count.rows).toHaveLength(4);
  });
});

describe("relaying the emails of committed registrations to the emails queue", () => {
  const relayFor = (queue: Pick<Queue, "addBulk">, waitMs = 10) => createWelcomeRelay({ queue, retry: RETRY, log, waitMs });
  const appliedOf = async (n: number, tag: string) => {
    const writes = Array.from({ length: n }, (_, i) => reg(`${tag}-${i}-${randomUUID().slice(0, 6)}@example.com`, `req-${tag}-${i}`, `Name ${i}`));
    const settled = await Promise.all((await applyWrites(db, writes)).settled);
    return writes.map((write, k) => ({ write, result: (settled[k] as { value: { result: unknown } }).value.result }));
  };

  it("gathers the emails of several commits into one batch job: created registrations only, with name and request id", async () => {
    const relay = relayFor(queues.emails, 50);
    const one = await appliedOf(2, "relay-a");
    const two = await appliedOf(1, "relay-b");
    const dupEmail = (one[0]!.write.payload as { registration: { email: string } }).registration.email.toUpperCase();
    const dup = await applyWrite(db, reg(dupEmail));
    relay.add(one);
    relay.add([...two, { write: reg(dupEmail), result: (dup as { result: unknown }).result }]);
    await relay.close();
    const ids = [...one, ...two].map((a) => (a.result as { registrationId: number }).registrationId);
    const job = await queues.emails.getJob(welcomeBatchJobId(ids));
    expect(job?.name).toBe(WELCOME_BATCH_JOB);
    expect(job?.data).toEqual({
      v: 1,
      emails: [...one, ...two].map((a, i) => ({
        registrationId: ids[i],
        email: (a.write.payload as { registration: { email: string } }).registration.email,
        name: (a.write.payload as { registration: { name: string } }).registration.name,
        requestId: a.write.requestId,
      })),
    });
    expect(job?.opts).toMatchObject({ attempts: 3, backoff: { type: "exponential", delay: 100 } });
    // The rows stay pending until sent: the relay writes nothing to PostgreSQL.
    expect(new Set(await statusesOf(ids))).toEqual(new Set(["pending"]));
  });

  it("the same emails relayed twice (a redelivered carrier) make the same job", async () => {
    const applied = await appliedOf(3, "relay-twice");
    for (const _ of [1, 2]) {
      const relay = relayFor(queues.emails);
      relay.add(applied);
      await relay.close();
    }
    const ids = applied.map((a) => (a.result as { registrationId: number }).registrationId);
    expect(await batchedIds(ids)).toEqual(ids);
  });

  it("an add that fails leaves the rows pending for the dispatcher, and never fails the writes", async () => {
    const applied = await appliedOf(2, "relay-fail");
    const relay = relayFor({ addBulk: async () => Promise.reject(new Error("redis away")) });
    relay.add(applied);
    await relay.close();
    const ids = applied.map((a) => (a.result as { registrationId: number }).registrationId);
    expect(await statusesOf(ids)).toEqual(["pending", "pending"]);
    expect(await batchedIds(ids)).toEqual([]);
  });
});

describe("dispatching what the relay missed", () => {
  const metrics = createWorkerMetrics();
  const dispatcherFor = (queue: Pick<Queue, "addBulk">, opts: { batchSize?: number; emailsPerJob?: number; afterMs?: number } = {}) =>
    createWelcomeDispatcher({ db, queue, retry: RETRY, intervalMs: 20, log, metrics, afterMs: opts.afterMs ?? 0, ...opts });
  /** Dispatches until nothing is pending; answers how many it moved. */
  const drain = async (dispatcher: ReturnType<typeof dispatcherFor>) => {
    let total = 0;
    for (let n = await dispatcher.dispatchOnce(); n > 0; n = await dispatcher.dispatchOnce()) total += n;
    return total;
  };
  /** The emails queue, recording the registration ids of every addBulk made through it. */
  const recording = (before?: () => Promise<void>, after?: () => Promise<void>) => {
    const added: number[] = [];
    const jobIds: string[] = [];
    const queue: Pick<Queue, "addBulk"> = {
      addBulk: async (jobs) => {
        await before?.();
        const result = await queues.emails.addBulk(jobs);
        for (const j of jobs) {
          jobIds.push(j.opts!.jobId!);
          added.push(...(j.data as WelcomeBatchData).emails.map((e) => e.registrationId));
        }
        await after?.();
        return result;
      },
    };
    return { queue, added, jobIds };
  };

  // Earlier tests leave rows pending; each test here starts from an empty outbox.
  beforeEach(async () => {
    await drain(dispatcherFor(queues.emails));
    expect(await pendingCount()).toBe(0);
  });

  it("adds the pending rows as batch jobs with the registrations' names and request ids, and marks them queued", async () => {
    const ids = await registerMany(5, "one");
    const before = (await metrics.emailsDispatched.get()).values[0]?.value ?? 0;
    const { queue, added, jobIds } = recording();
    expect(await drain(dispatcherFor(queue, { emailsPerJob: 2 }))).toBe(5);
    expect(added).toEqual(ids);
    expect(jobIds).toHaveLength(3);
    expect(await statusesOf(ids)).toEqual(["queued", "queued", "queued", "queued", "queued"]);
    const first = await queues.emails.getJob(welcomeBatchJobId(ids.slice(0, 2)));
    expect(first?.data).toEqual({
      v: 1,
      emails: ids.slice(0, 2).map((registrationId, i) => ({ registrationId, email: expect.stringMatching(new RegExp(`^one-${i}-`)), name: `Name ${i}`, requestId: `req-one-${i}` })),
    });
    expect(first?.opts).toMatchObject({ attempts: 3, backoff: { type: "exponential", delay: 100 } });
    expect((await metrics.emailsDispatched.get()).values[0]?.value).toBe(before + 5);
    // Nothing pending: a dispatch adds nothing.
    expect(await dispatcherFor(queue).dispatchOnce()).toBe(0);
    expect(added).toHaveLength(5);
  });

  it("leaves rows younger than its delay to the relay", async () => {
    const ids = await registerMany(2, "young");
    const { queue, added } = recording();
    expect(await dispatcherFor(queue, { afterMs: 60_000 }).dispatchOnce()).toBe(0);
    expect(added).toEqual([]);
    expect(await statusesOf(ids)).toEqual(["pending", "pending"]);
  });

  it("two dispatchers racing on the same rows add each email once", async () => {
    const ids = await registerMany(40, "race");
    // A slow add keeps each dispatcher's rows locked while the other one looks.
    const one = recording(() => sleep(20));
    const two = recording(() => sleep(20));
    await Promise.all([drain(dispatcherFor(one.queue, { batchSize: 10 })), drain(dispatcherFor(two.queue, { batchSize: 10 }))]);
    expect(one.added.length).toBeGreaterThan(0);
    expect(two.added.length).toBeGreaterThan(0);
    expect(one.added.filter((id) => two.added.includes(id))).toEqual([]);
    expect([...one.added, ...two.added].sort((a, b) => a - b)).toEqual(ids);
    expect(new Set(await statusesOf(ids))).toEqual(new Set(["queued"]));
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
    const first = dispatcherFor(one.queue, { batchSize: 10 }).dispatchOnce();
    await held;
    expect(await drain(dispatcherFor(two.queue, { batchSize: 10 }))).toBe(20);
    release();
    expect(await first).toBe(10);
    // Oldest first: the first dispatcher took the 10 lowest ids, the second the rest.
    expect(one.added).toEqual(ids.slice(0, 10));
    expect(two.added.sort((a, b) => a - b)).toEqual(ids.slice(10));
    expect(new Set(await statusesOf(ids))).toEqual(new Set(["queued"]));
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
      expect(await statusesOf(ids)).toEqual(["pending", "pending"]);
      expect(await batchedIds(ids)).toEqual([]);
    } finally {
      await broken.close().catch(() => {});
    }
    expect(await drain(dispatcherFor(queues.emails))).toBe(2);
    expect(await statusesOf(ids)).toEqual(["queued", "queued"]);
    expect(await batchedIds(ids)).toEqual(ids);
  });

  it("a crash between the add and the commit: the next dispatch adds the same job, and each email stays in one", async () => {
    const ids = await registerMany(3, "crash");
    const crashing = recording(undefined, async () => {
      throw new Error("worker died before the commit");
    });
    await expect(dispatcherFor(crashing.queue).dispatchOnce()).rejects.toThrow(/worker died/);
    expect(await statusesOf(ids)).toEqual(["pending", "pending", "pending"]);
    const landed = await queues.emails.getJob(welcomeBatchJobId(ids));
    expect(landed).toBeDefined();

    const again = recording();
    expect(await drain(dispatcherFor(again.queue))).toBe(3);
    expect(again.jobIds).toEqual(crashing.jobIds);
    expect(await statusesOf(ids)).toEqual(["queued", "queued", "queued"]);
    // The same job as before: the second add of an id that is in Redis was a no-op.
    expect((await queues.emails.getJob(welcomeBatchJobId(ids)))?.timestamp).toBe(landed!.timestamp);
    expect(await batchedIds(ids)).toEqual(ids);
  });

  it("started, it dispatches within its interval; close waits for the dispatch in flight", async () => {
    const { queue, added } = recording(() => sleep(50));
    const dispatcher = dispatcherFor(queue);
    dispatcher.start();
    try {
      const ids = await registerMany(2, "poll");
      await waitFor(async () => (await statusesOf(ids)).every((s) => s === "queued"), 5_000, "the rows to be queued");
      const later = await registerMany(1, "poll-late");
      await waitFor(() => added.includes(later[0]!), 5_000, "the add of a later row");
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

describe("sending welcome emails once", () => {
  const from = `Ingest <hello@${DOMAIN}>`;
  const emailJob = (id: string, name: string, data: unknown, attempts: number, attemptsMade = 0) =>
    ({ id, name, data, opts: { attempts }, attemptsMade }) as unknown as Job;
  const spilled = async (registrationId: number) => queues.emails.getJob(welcomeEmailJobId(registrationId));

  it("sends each once with a stable Message-ID; later and concurrent runs send nothing", async () => {
    const sink = createSmtpSink(await freePort());
    await sink.listen();
    const mailer = createMailer({ smtpUrl: sink.url, from, maxConnections: 3, nodeEnv: "test" }, log);
    try {
      const addresses = [emailOf("once-a"), emailOf("once-b")];
      const emails: { registrationId: number; email: string; name: string }[] = [];
      for (const email of addresses) emails.push({ registrationId: await register(email), email, name: "Nia" });
      const runs = await Promise.all([1, 2, 3].map(() => sendWelcomes(db, mailer, emails, DOMAIN)));
      expect(runs.flat().filter((o) => "sent" in o && o.sent)).toHaveLength(2);
      expect(await sendWelcomes(db, mailer, emails, DOMAIN)).toEqual(
        emails.map((e) => ({ registrationId: e.registrationId, messageId: `<welcome-${e.registrationId}@${DOMAIN}>`, sent: false })),
      );
      expect(sink.messages).toHaveLength(2);
      for (const e of emails) {
        expect(sink.count(`<welcome-${e.registrationId}@${DOMAIN}>`)).toBe(1);
        const [row] = await db.select().from(emailSends).where(eq(emailSends.registrationId, e.registrationId));
        expect(row).toMatchObject({ kind: "welcome", status: "sent", recipient: e.email, messageId: `<welcome-${e.registrationId}@${DOMAIN}>`, error: null });
        expect(row?.sentAt).toBeInstanceOf(Date);
      }
      expect(sink.messages[0]).toMatchObject({ subject: "Welcome to ingest" });
    } finally {
      mailer.close();
      await sink.close();
    }
  });

  it("a send that runs while its dispatch has not committed waits for the row, then sends once", async () => {
    const mailer = createMailer({ smtpUrl: undefined, from, maxConnections: 1, nodeEnv: "test" }, log);
    const email = emailOf("early");
    const registrationId = await register(email);
    const payload = { registrationId, email, name: "Nia" };
    let send: Promise<unknown> | undefined;
    const queue: Pick<Queue, "addBulk"> = {
      addBulk: async (jobs) => {
        const added = await queues.emails.addBulk(jobs);
        // The email lane picks the job up at once, while the dispatch has not committed.
        send ??= sendWelcomes(db, mailer, [payload], DOMAIN);
        await waitFor(async () => (await db.execute(sql`select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`)).rows.length > 0, 5_000, "the send to wait on the row");
        return added;
      },
    };
    const dispatcher = createWelcomeDispatcher({ db, queue, retry: RETRY, intervalMs: 20, afterMs: 0, log, metrics: createWorkerMetrics() });
    while ((await dispatcher.dispatchOnce()) > 0);
    expect(await send).toEqual([{ registrationId, messageId: `<welcome-${registrationId}@${DOMAIN}>`, sent: true }]);
    expect(await outboxOf([registrationId])).toMatchObject([{ status: "sent", message_id: `<welcome-${registrationId}@${DOMAIN}>` }]);
    expect(await sendWelcomes(db, mailer, [payload], DOMAIN)).toMatchObject([{ sent: false }]);
    mailer.close();
  });

  it("a server that is down fails the batch with a clear reason; out of retries, each email becomes a failed job of its own, which a retry sends", async () => {
    const sink = createSmtpSink(await freePort());
    const mailer = createMailer({ smtpUrl: sink.url, from, maxConnections: 1, nodeEnv: "test" }, log);
    const processor = createEmailProcessor({ db, mailer, domain: DOMAIN, log, metrics: createWorkerMetrics(), queue: queues.emails });
    try {
      const addresses = [emailOf("down-a"), emailOf("down-b")];
      const emails: { registrationId: number; email: string; name: string }[] = [];
      for (const email of addresses) emails.push({ registrationId: await register(email), email, name: "Nia" });
      const ids = emails.map((e) => e.registrationId);
      const batch = (attemptsMade: number) => emailJob(welcomeBatchJobId(ids), WELCOME_BATCH_JOB, { emails }, 2, attemptsMade);

      await expect(processor(batch(0))).rejects.toThrow(/^2 of 2 emails not sent: SMTP_UNAVAILABLE: connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
      // The failed attempt left the outbox rows as the registrations wrote them.
      expect(await statusesOf(ids)).toEqual(["pending", "pending"]);
      expect(await spilled(ids[0]!)).toBeUndefined();

      // The last attempt: each email is recorded failed and becomes a job of its own.
      expect(await processor(batch(1))).toEqual({ sent: 0, sentBefore: 0, failed: ids.map((registrationId) => ({ registrationId, reason: expect.stringMatching(/^SMTP_UNAVAILABLE: /) })) });
      expect(await statusesOf(ids)).toEqual(["failed", "failed"]);
      const own = await spilled(ids[0]!);
      expect(own).toMatchObject({ name: WELCOME_EMAIL_JOB, data: { payload: emails[0] }, opts: { attempts: 1 } });

      // Its one attempt fails while the server is away: Bull Board shows it failed, with the reason.
      await expect(processor(emailJob(own!.id!, own!.name, own!.data, 1))).rejects.toThrow(/^SMTP_UNAVAILABLE: /);
      // Retried from Bull Board once the server is back: it sends.
      await sink.listen();
      expect(await processor(emailJob(own!.id!, own!.name, own!.data, 1))).toMatchObject({ registrationId: ids[0], sent: true });
      expect(sink.count(`<welcome-${ids[0]}@${DOMAIN}>`)).toBe(1);
      expect(await statusesOf(ids)).toEqual(["sent", "failed"]);
    } finally {
      mailer.close();
      await sink.close();
    }
  });

  it("a recipient the server refuses for good fails alone: its batch sends the others and completes", async () => {
    const sink = createSmtpSink(await freePort());
    await sink.listen();
    sink.refuse(/^refused-/);
    const mailer = createMailer({ smtpUrl: sink.url, from, maxConnections: 2, nodeEnv: "test" }, log);
    const processor = createEmailProcessor({ db, mailer, domain: DOMAIN, log, metrics: createWorkerMetrics(), queue: queues.emails });
    try {
      const addresses = [emailOf("accepted"), emailOf("refused"), emailOf("accepted")];
      const emails: { registrationId: number; email: string; name: string }[] = [];
      for (const email of addresses) emails.push({ registrationId: await register(email), email, name: "Nia" });
      const ids = emails.map((e) => e.registrationId);
      const result = await processor(emailJob(welcomeBatchJobId(ids), WELCOME_BATCH_JOB, { emails }, 5));
      expect(result).toEqual({ sent: 2, sentBefore: 0, failed: [{ registrationId: ids[1], reason: expect.stringMatching(/^SMTP_REJECTED: .*550/) }] });
      expect(await statusesOf(ids)).toEqual(["sent", "failed", "sent"]);
      const own = await spilled(ids[1]!);
      expect(own).toMatchObject({ name: WELCOME_EMAIL_JOB, data: { payload: emails[1] } });
      await expect(processor(emailJob(own!.id!, own!.name, own!.data, 1))).rejects.toMatchObject({ name: "UnrecoverableError", message: expect.stringMatching(/^SMTP_REJECTED: /) });
    } finally {
      mailer.close();
      await sink.close();
    }
  });

  it("without SMTP_URL the emails are only logged, and the jobs say so: logged, not sent", async () => {
    const processor = createEmailProcessor({
      db,
      mailer: createMailer({ smtpUrl: undefined, from, maxConnections: 1, nodeEnv: "test" }, log),
      domain: DOMAIN,
      log,
      metrics: createWorkerMetrics(),
      queue: queues.emails,
    });
    const emails: { registrationId: number; email: string; name: string }[] = [];
    for (const email of [emailOf("logged-a"), emailOf("logged-b")]) emails.push({ registrationId: await register(email), email, name: "Nia" });
    const ids = emails.map((e) => e.registrationId);
    expect(await processor(emailJob(welcomeBatchJobId(ids), WELCOME_BATCH_JOB, { emails }, 3))).toEqual({ logged: 2, loggedBefore: 0, failed: [] });
    expect(await processor(emailJob(welcomeEmailJobId(ids[0]!), WELCOME_EMAIL_JOB, { payload: emails[0] }, 1))).toEqual({
      registrationId: ids[0],
      messageId: `<welcome-${ids[0]}@${DOMAIN}>`,
      logged: false,
    });
  });

  it("a bad payload fails at once", async () => {
    const processor = createEmailProcessor({
      db,
      mailer: createMailer({ smtpUrl: undefined, from: "a@b.c", maxConnections: 1, nodeEnv: "test" }, log),
      domain: "b.c",
      log,
      metrics: createWorkerMetrics(),
      queue: queues.emails,
    });
    const job = emailJob("eml-welcome-x", WELCOME_EMAIL_JOB, { payload: { registrationId: 1, email: "nope" } }, 5);
    await expect(processor(job)).rejects.toMatchObject({ name: "UnrecoverableError", message: expect.stringMatching(/^INVALID_PAYLOAD: /) });
    const batch = emailJob("eml-welcome-batch-x", WELCOME_BATCH_JOB, { emails: [{ registrationId: 1, email: "nope", name: "N" }] }, 5);
    await expect(processor(batch)).rejects.toMatchObject({ name: "UnrecoverableError", message: expect.stringMatching(/^INVALID_PAYLOAD: /) });
  });
});

describe("mail settings", () => {
  it("rejects an SMTP_URL that is not smtp:// or smtps:// and a MAIL_FROM without an address", () => {
    expect(() => loadEnv({ SMTP_URL: "http://mail.example.com" })).toThrow(/SMTP_URL must use smtp: or smtps:/);
    expect(() => loadEnv({ MAIL_FROM: "Ingest" })).toThrow(/MAIL_FROM must be an address/);
    const env = loadEnv({ SMTP_URL: "smtps://u:p@mail.example.com:465", MAIL_FROM: "Shop <hi@shop.example>" });
    expect(env).toMatchObject({
      SMTP_URL: "smtps://u:p@mail.example.com:465",
      EMAIL_CONCURRENCY: 5,
      EMAIL_ATTEMPTS: 10,
      EMAIL_RETRY_DELAY_MS: 5_000,
      EMAIL_DISPATCH_INTERVAL_MS: 5_000,
      EMAIL_DISPATCH_AFTER_MS: 30_000,
      EMAIL_RELAY_WAIT_MS: 250,
    });
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
