import { DEFAULT_JOB_OPTIONS } from "@ingest/jobs";
import { Queue } from "bullmq";
import { sql } from "drizzle-orm";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request, spawnWorker, startApi, testDb, testEnv, waitFor, waitForJob, type Api, type WorkerProcess } from "./support/harness.js";

// Jobs put straight onto the queues, as a producer other than the API might: the worker
// must fail what PostgreSQL cannot take at once, not retry it for minutes.
const { prefix, redisUrl } = testEnv("invalid-data");
let api: Api;
let worker: WorkerProcess;
const queues = {
  products: new Queue("products", { connection: { url: redisUrl }, prefix }),
  registrations: new Queue("registrations", { connection: { url: redisUrl }, prefix }),
};
const { db, close: closeDb } = testDb();

beforeAll(async () => {
  [api, worker] = await Promise.all([startApi(prefix), spawnWorker(prefix)]);
});
afterAll(async () => {
  await worker?.stop();
  await api?.close();
  await Promise.all(Object.values(queues).map((q) => q.close()));
  await closeDb();
});

/** Adds a job as the producer does: its queue's id prefix, the default retry options. */
const produce = async (queue: keyof typeof queues, name: string, data: Record<string, unknown>) => {
  const jobId = `${queue === "products" ? "prd" : "reg"}-${randomUUID()}`;
  await queues[queue].add(name, data, { ...DEFAULT_JOB_OPTIONS, jobId });
  return jobId;
};
const replace = (productId: number, name: string, seq: number, prevSeq: number | null, prevJobId?: string) =>
  produce("products", "product.replace", {
    payload: { productId, product: { name, category: "c", default_price: "1.00" } },
    seq,
    prevSeq,
    ...(prevJobId ? { prevJobId } : {}),
  });

describe("jobs whose data PostgreSQL cannot take", () => {
  it("an edit with a NUL fails at once, after one attempt, and the product's next edit applies right away", async () => {
    const id = 730_001;
    const bad = await replace(id, "bad\u0000name", 1, null);
    const next = await replace(id, "after the bad one", 2, 1, bad);
    const failed = await waitForJob(api.url, bad, 10_000);
    // The payload check or PostgreSQL, whichever meets it first: either way for good.
    expect(failed).toMatchObject({ state: "failed", attempts: 1, error: expect.stringMatching(/^INVALID_(PAYLOAD|DATA): /) });
    expect(await waitForJob(api.url, next, 10_000)).toMatchObject({ state: "completed", attempts: 1, result: { productId: id } });
    expect((await db.execute(sql`select name from products where id = ${id}`)).rows).toEqual([{ name: "after the bad one" }]);
  });

  it("a registration with a lone surrogate (no character; PostgreSQL cannot store it) fails at once, for good", async () => {
    const email = `lone-${randomUUID().slice(0, 8)}@example.com`;
    const jobId = await produce("registrations", "registration.create", { payload: { registration: { email, name: "Lone \uD800" } } });
    const failed = await waitForJob(api.url, jobId, 10_000);
    // The worker's payload check refuses it before PostgreSQL would (INVALID_DATA).
    expect(failed).toMatchObject({ state: "failed", attempts: 1, error: expect.stringMatching(/^INVALID_(PAYLOAD|DATA): /) });
    // Recorded in the ledger as well, which answers once the job has left Redis.
    await waitFor(async () => (await db.execute(sql`select attempts, error from job_ledger where job_id = ${jobId}`)).rows[0], 5_000, "ledger row");
    expect((await db.execute(sql`select status, attempts from job_ledger where job_id = ${jobId}`)).rows).toEqual([{ status: "failed", attempts: 1 }]);
    expect((await db.execute(sql`select 1 from registrations where email = ${email}`)).rows).toEqual([]);
  });

  it("one such job among others added together fails alone; the others commit", async () => {
    const tag = randomUUID().slice(0, 8);
    const names = { [`ok1-${tag}`]: "One", [`bad-${tag}`]: "Lone \uDFFF", [`ok2-${tag}`]: "Two" };
    // One addBulk: the worker takes them together, into one micro-batch.
    const added = await queues.registrations.addBulk(
      Object.entries(names).map(([local, name]) => ({
        name: "registration.create",
        data: { payload: { registration: { email: `${local}@example.com`, name } } },
        opts: { ...DEFAULT_JOB_OPTIONS, jobId: `reg-${randomUUID()}` },
      })),
    );
    const ids = added.map((j) => j.id!);
    const jobs = await Promise.all(ids.map((id) => waitForJob(api.url, id, 10_000)));
    expect(jobs.map((j) => [j.state, j.attempts])).toEqual([
      ["completed", 1],
      ["failed", 1],
      ["completed", 1],
    ]);
    expect(Number((await db.execute(sql`select count(*) as n from registrations where email like ${`%-${tag}@example.com`}`)).rows[0]!.n)).toBe(2);
  });
});
