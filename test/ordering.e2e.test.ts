import { DEFAULT_JOB_OPTIONS } from "@ingest/jobs";
import { Queue, Worker } from "bullmq";
import pg from "pg";
import { sql } from "drizzle-orm";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { request, spawnWorker, startApi, testDb, testEnv, waitFor, waitForJob, type Api, type WorkerProcess } from "./support/harness.js";

const { prefix, databaseUrl, redisUrl } = testEnv("order");
let api: Api;
const workers: WorkerProcess[] = [];
const { db, close: closeDb } = testDb();

beforeAll(async () => {
  api = await startApi(prefix);
});
// Each test starts its own workers: the next one must find none running.
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});
afterAll(async () => {
  await api.close();
  await closeDb();
});

// Both ways a worker applies jobs: in micro-batches (the default) and one by one.
describe.each<{ mode: string; env: Record<string, string>; base: number }>([
  { mode: "micro-batched", env: {}, base: 700_000 },
  { mode: "one by one", env: { WORKER_BATCH_SIZE: "1" }, base: 710_000 },
])("per-product order across worker processes, $mode", ({ env, base }) => {
  it("edits wait for an earlier edit that is held up, then all apply in acceptance order", async () => {
    const id = base + 1;
    // Accept every edit before any worker runs, so the queue holds them all.
    const edits = [await request(api.url, "PUT", `/products/${id}`, { json: { name: "start", category: "c", default_price: 1 } })];
    for (let i = 0; i < 30; i++) {
      const json = i % 2 === 0 ? { name: `n${i}` } : { slogan: `s${i}`, default_price: i };
      edits.push(await request(api.url, "PATCH", `/products/${id}`, { json }));
    }
    expect(edits.map((e) => e.status + e.text).filter((s) => !s.startsWith("202"))).toEqual([]);
    const held = edits[1]!.body.jobId as string;

    // Hold up the first PATCH: an uncommitted ledger row with its id blocks its worker.
    const blocker = new pg.Client({ connectionString: databaseUrl });
    await blocker.connect();
    await blocker.query("begin");
    await blocker.query(
      "insert into job_ledger (job_id, queue, name, status, accepted_at) values ($1, 'products', 'product.patch', 'active', now())",
      [held],
    );

    workers.push(await spawnWorker(prefix, env), await spawnWorker(prefix, env));
    await waitForJob(api.url, edits[0]!.body.jobId);
    // Give the workers time to try the later edits: none may overtake the held one.
    await sleep(1_500);
    const early = await Promise.all(edits.slice(2).map((e) => request(api.url, "GET", `/jobs/${e.body.jobId}`)));
    expect(early.map((r) => r.body.state).filter((s) => s === "completed")).toEqual([]);

    await blocker.query("rollback");
    await blocker.end();
    const jobs = await Promise.all(edits.map((e) => waitForJob(api.url, e.body.jobId, 30_000)));
    expect(jobs.map((j) => j.state)).toEqual(jobs.map(() => "completed"));
    const [row] = (await db.execute(sql`select name, slogan, default_price from products where id = ${id}`)).rows;
    expect(row).toEqual({ name: "n28", slogan: "s29", default_price: "29.00" });
  });

  it("under a steady stream of edits from two workers the last accepted edit wins", async () => {
    const id = base + 2;
    workers.push(await spawnWorker(prefix, env), await spawnWorker(prefix, env));
    const edits = [await request(api.url, "PUT", `/products/${id}`, { json: { name: "v-start", category: "c", default_price: 1 } })];
    for (let i = 0; i < 40; i++) {
      const json = i % 2 === 0 ? { name: `v${i}` } : { slogan: `s${i}` };
      edits.push(await request(api.url, "PATCH", `/products/${id}`, { json }));
    }
    await Promise.all(edits.map((e) => waitForJob(api.url, e.body.jobId, 30_000)));
    await waitFor(async () => {
      const [row] = (await db.execute(sql`select name, slogan from products where id = ${id}`)).rows;
      return row?.name === "v38" && row?.slogan === "s39";
    }, 5_000, "final state");
  });
});

const nameOf = async (id: number) => (await db.execute<{ name: string }>(sql`select name from products where id = ${id}`)).rows[0]?.name;

describe("waiting for an earlier edit", () => {
  it("spends no attempt however long it waits: the status reads 0 while it is parked, 1 while it runs and when it is done", async () => {
    const id = 720_001;
    const products = new Queue("products", { connection: { url: redisUrl }, prefix });
    try {
      // The earlier edit is taken by a fetcher of the test's own that does nothing with
      // it: running somewhere, not applied, until the test puts it back.
      const holder = new Worker("products", null, { connection: { url: redisUrl }, prefix, lockDuration: 60_000 });
      const first = await products.add(
        "product.replace",
        { payload: { productId: id, product: { name: "first", category: "c", default_price: "1.00" } }, seq: 1, prevSeq: null },
        { ...DEFAULT_JOB_OPTIONS, jobId: `prd-${randomUUID()}` },
      );
      const held = (await holder.getNextJob("held"))!;
      expect(held.id).toBe(first.id);
      const second = await products.add(
        "product.patch",
        { payload: { productId: id, changes: { name: "second" } }, seq: 2, prevSeq: 1, prevJobId: first.id },
        { ...DEFAULT_JOB_OPTIONS, jobId: `prd-${randomUUID()}` },
      );
      workers.push(await spawnWorker(prefix));

      // The waiting edit waits in its worker for a while, then steps aside (parked in the
      // delayed set) and comes back: until it has done so at least twice.
      const seen = new Set<string>();
      await waitFor(
        async () => {
          const status = (await request(api.url, "GET", `/jobs/${second.id}`)).body;
          seen.add(`${status.state}:${status.attempts}`);
          return ((await products.getJob(second.id!))?.attemptsStarted ?? 0) >= 3;
        },
        20_000,
        "the edit parked twice",
      );
      expect([...seen].filter((s) => s !== "queued:0" && s !== "active:1")).toEqual([]);
      expect(seen.has("active:1")).toBe(true);
      expect((await products.getJob(second.id!))!.attemptsMade).toBe(0);
      expect(await nameOf(id)).toBeUndefined();

      await held.moveToWait("held");
      await holder.close();
      expect(await waitForJob(api.url, second.id!, 10_000)).toMatchObject({ state: "completed", attempts: 1 });
      const ledger = await db.execute(sql`select job_id, attempts from job_ledger where job_id in (${first.id}, ${second.id}) order by accepted_at, job_id`);
      expect(ledger.rows.map((r) => r.attempts)).toEqual([1, 1]);
    } finally {
      await products.close();
    }
  });
});
