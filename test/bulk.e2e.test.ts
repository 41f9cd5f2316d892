import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request, spawnWorker, startApi, testDb, testEnv, waitFor, waitForJob, type Api, type WorkerProcess } from "./support/harness.js";

const { prefix } = testEnv("bulk");
let api: Api;
const workers: WorkerProcess[] = [];
const { db, close: closeDb } = testDb();

beforeAll(async () => {
  api = await startApi(prefix, { BULK_MAX_LINES: "3000" });
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await api.close();
  await closeDb();
});

const ndjson = (lines: unknown[]) => lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n");
const post = (body: string, headers: Record<string, string> = {}) =>
  request(api.url, "POST", "/products/bulk", { body, headers: { "content-type": "application/x-ndjson", ...headers } });
const product = (name: string) => ({ name, category: "c", default_price: "10.00" });
const productRow = async (id: number) =>
  (await db.execute(sql`select name, slogan, default_price from products where id = ${id}`)).rows[0];
const ensureWorker = async () => {
  if (!workers.length) workers.push(await spawnWorker(prefix));
};

describe("POST /products/bulk", () => {
  it("applies the valid lines, reports the invalid ones and the failed ones with their line numbers", async () => {
    const body = ndjson([
      { op: "create", product: product("bulk-created") },
      { op: "replace", id: 930_001, product: product("bulk-replaced") },
      "",
      { op: "patch", id: 930_001, changes: { slogan: "patched in bulk", default_price: 12.5 } },
      "{not json",
      { op: "upsert", id: 1 },
      { op: "patch", id: 930_404, changes: { name: "nobody" } },
      { op: "replace", id: 930_002, product: { name: "", category: "c", default_price: "-1" } },
      { op: "delete", id: 930_003 },
    ]);
    const res = await post(`${body}\r\n`);
    expect(res.status).toBe(202);
    expect(res.headers.get("location")).toBe(`/jobs/${res.body.jobId}`);
    expect(res.body).toMatchObject({ jobId: expect.stringMatching(/^blk-/), status: "queued", accepted: 5, invalid: 3 });
    expect(res.body.errors.map((e: { path: string }) => e.path.split("/").slice(0, 3).join("/"))).toEqual(
      expect.arrayContaining(["/lines/5", "/lines/6", "/lines/8"]),
    );

    const queued = await request(api.url, "GET", `/jobs/${res.body.jobId}`);
    expect(queued.body).toMatchObject({ type: "product.bulk", progress: { accepted: 5, applied: 0, invalid: 3 } });

    await ensureWorker();
    const job = await waitForJob(api.url, res.body.jobId, 20_000);
    expect(job).toMatchObject({
      state: "completed",
      result: {
        accepted: 5,
        applied: 4,
        failed: 1,
        invalid: 3,
        failures: [{ line: 7, code: "PRODUCT_NOT_FOUND", message: "product 930404 does not exist" }],
      },
    });
    expect(job.result.invalidLines.map((l: { line: number }) => l.line)).toEqual([5, 6, 8]);
    expect(await productRow(930_001)).toEqual({ name: "bulk-replaced", slogan: "patched in bulk", default_price: "12.50" });
    const metrics = await request(api.url, "GET", "/metrics");
    expect(metrics.text).toMatch(/ingest_bulk_lines_total\{verdict="invalid"\} [3-9]/);
    expect((await db.execute(sql`select count(*)::int as n from products where name = 'bulk-created'`)).rows[0]).toEqual({ n: 1 });
  });

  it("refuses what it cannot take as a whole, and stores nothing for it", async () => {
    const stored = async () =>
      Object.values(await api.runtime.deps.queues.bulk.getJobCounts("waiting", "active", "completed", "failed", "delayed")).reduce((a, b) => a + b, 0);
    const before = await stored();
    expect((await request(api.url, "POST", "/products/bulk", { json: [{ op: "delete", id: 1 }] })).status).toBe(415);
    expect((await post(ndjson([{ op: "delete", id: 1 }]), { "content-encoding": "gzip" })).status).toBe(415);
    const empty = await post("\n\n");
    expect(empty.status).toBe(400);
    expect(empty.headers.get("content-type")).toMatch(/application\/problem\+json/);
    const allBad = await post(ndjson([{ op: "delete" }, "[]"]));
    expect(allBad.status).toBe(400);
    expect(allBad.body.errors.map((e: { path: string }) => e.path)).toEqual(["/lines/1/id", "/lines/2/op"]);
    const tooMany = await post(ndjson(Array.from({ length: 3_001 }, (_, i) => ({ op: "delete", id: 940_000 + i }))));
    expect(tooMany.status).toBe(413);
    const longLine = await post(ndjson([{ op: "create", product: { ...product("long"), description: "x".repeat(200_000) } }]));
    expect(longLine.status).toBe(413);
    expect((await request(api.url, "GET", "/products/bulk")).status).toBe(405);
    expect(await stored()).toBe(before);
  });

  it("an Idempotency-Key covers the whole batch: the same body answers the same job, another body 422", async () => {
    const body = ndjson([{ op: "replace", id: 930_010, product: product("idem") }]);
    const headers = { "idempotency-key": `bulk-${Date.now()}` };
    const first = await post(body, headers);
    const again = await post(body, headers);
    expect(first.status).toBe(202);
    expect(again.status).toBe(202);
    expect(again.body.jobId).toBe(first.body.jobId);
    expect((await post(ndjson([{ op: "delete", id: 930_010 }]), headers)).status).toBe(422);
  });

  it("keeps each product's edits in acceptance order across batches and interactive writes", async () => {
    const id = 930_020;
    // All accepted first; the lanes then drain side by side.
    const accepted = [
      await request(api.url, "PUT", `/products/${id}`, { json: product("v0") }),
      await post(ndjson([{ op: "patch", id, changes: { name: "b1" } }, { op: "patch", id, changes: { slogan: "bs" } }])),
      await request(api.url, "PATCH", `/products/${id}`, { json: { name: "i2" } }),
      await post(ndjson([{ op: "patch", id, changes: { name: "b3" } }])),
      await request(api.url, "PATCH", `/products/${id}`, { json: { default_price: 42 } }),
    ];
    expect(accepted.map((r) => r.status)).toEqual([202, 202, 202, 202, 202]);
    await ensureWorker();
    workers.push(await spawnWorker(prefix));
    const jobs = await Promise.all(accepted.map((r) => waitForJob(api.url, r.body.jobId, 30_000)));
    expect(jobs.map((j) => j.state)).toEqual(["completed", "completed", "completed", "completed", "completed"]);
    expect(await productRow(id)).toEqual({ name: "b3", slogan: "bs", default_price: "42.00" });
  });

  it("takes a few thousand lines in one streamed request and applies them all once", async () => {
    const lines = Array.from({ length: 2_500 }, (_, i) => ({ op: "replace", id: 950_000 + (i % 500), product: product(`many-${i}`) }));
    const res = await post(ndjson(lines));
    expect(res.body).toMatchObject({ accepted: 2_500, invalid: 0 });
    await ensureWorker();
    const job = await waitForJob(api.url, res.body.jobId, 60_000);
    expect(job.result).toMatchObject({ accepted: 2_500, applied: 2_500, failed: 0 });
    // Each of the 500 products took its last edit (lines 2001..2500).
    const rows = (await db.execute(sql`select id, name from products where id between 950000 and 950499 order by id`)).rows;
    expect(rows).toHaveLength(500);
    expect(rows.every((r, k) => r.name === `many-${2_000 + k}`)).toBe(true);
    const ledger = await db.execute(sql`select count(*)::int as n from job_ledger where job_id like ${`${res.body.jobId}-L%`}`);
    expect(ledger.rows[0]).toEqual({ n: 2_500 });
  });

  it("a worker killed in the middle of a batch: the next one finishes it, every line applied once", async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop()));
    const fast = { LOCK_DURATION_MS: "2000", STALLED_INTERVAL_MS: "1000", BULK_CHUNK_SIZE: "50" };
    const lines = Array.from({ length: 3_000 }, (_, i) => ({ op: "create", product: product(`killed-batch-${i}`) }));
    const res = await post(ndjson(lines));
    expect(res.status).toBe(202);
    const victim = await spawnWorker(prefix, fast);
    await waitFor(async () => {
      const status = await request(api.url, "GET", `/jobs/${res.body.jobId}`);
      return (status.body.progress?.applied ?? 0) >= 200;
    }, 20_000, "the batch under way");
    victim.proc.kill("SIGKILL");
    await victim.exited;
    // Killed part way: some lines applied, not all.
    const atKill = (await request(api.url, "GET", `/jobs/${res.body.jobId}`)).body;
    expect(atKill.state).toBe("active");
    expect(atKill.progress.applied).toBeLessThan(3_000);
    workers.push(await spawnWorker(prefix, fast));
    const job = await waitForJob(api.url, res.body.jobId, 60_000).catch((err) => {
      console.log(workers.map((w) => w.output()).join("\n"));
      throw err;
    });
    expect(job).toMatchObject({ state: "completed", result: { accepted: 3_000, applied: 3_000, failed: 0 } });
    // Creates are not idempotent by themselves: only the ledger keeps a rerun line from creating twice.
    const created = await db.execute(sql`select count(*)::int as n, count(distinct name)::int as names from products where name like 'killed-batch-%'`);
    expect(created.rows[0]).toEqual({ n: 3_000, names: 3_000 });
  }, 90_000);
});
