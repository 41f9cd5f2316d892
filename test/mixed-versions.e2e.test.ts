// A rolling deploy runs two releases side by side. Here the releases differ in the job
// format they write and read (PAYLOAD_VERSION 1 and 2), as compiled processes: a worker
// never misreads, fails or loses a job written by a newer release — it leaves it, visibly,
// for a worker that reads it — and reads the jobs of an older one.
import { createQueues, closeQueues, carrierIdOf, versionOf } from "@ingest/jobs";
import { createWorkerConnection } from "@ingest/redis";
import { sql } from "drizzle-orm";
import { afterAll, describe, expect, inject, it } from "vitest";
import { request, spawnApi, spawnWorker, testDb, testEnv, waitFor, type WorkerProcess } from "./support/harness.js";
import { freePort } from "./support/private-redis.js";

const { prefix, redisUrl } = testEnv("versions");
const TAG = `v${inject("runId")}`;
const { db, close: closeDb } = testDb();
const connection = createWorkerConnection({ url: redisUrl });
const queues = createQueues(connection, prefix, () => {});
const started: WorkerProcess[] = [];

afterAll(async () => {
  await Promise.all(started.map((p) => p.stop()));
  await closeQueues(queues);
  connection.disconnect();
  await closeDb();
});

async function worker(version: number): Promise<{ proc: WorkerProcess; metrics: string }> {
  const port = await freePort();
  const proc = await spawnWorker(prefix, { PAYLOAD_VERSION: String(version), WORKER_METRICS_PORT: String(port) });
  started.push(proc);
  return { proc, metrics: `http://127.0.0.1:${port}` };
}

async function api(version: number): Promise<{ url: string; proc: WorkerProcess }> {
  const port = await freePort();
  const proc = await spawnApi(prefix, port, { PAYLOAD_VERSION: String(version) });
  started.push(proc);
  return { url: `http://127.0.0.1:${port}`, proc };
}

/** Posts registrations and product creates; resolves with the job id of each, by email or product name. */
async function postWrites(base: string, label: string, n: number): Promise<Map<string, string>> {
  const jobs = new Map<string, string>();
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const email = `${label}-${i}@${TAG}.example.com`;
      const reg = await request(base, "POST", "/registrations", { json: { email, name: `R ${i}` }, headers: { "idempotency-key": `${TAG}-${email}` } });
      expect(reg.status).toBe(202);
      jobs.set(email, reg.body.jobId);
      const name = `${TAG}-${label}-${i}`;
      const prd = await request(base, "POST", "/products", { json: { name, category: TAG, default_price: "1.00" }, headers: { "idempotency-key": name } });
      expect(prd.status).toBe(202);
      jobs.set(name, prd.body.jobId);
    }),
  );
  return jobs;
}

/** How many times each write's effect exists: registrations by email, products by name. */
async function effects(keys: string[]): Promise<Map<string, number>> {
  const regs = await db.execute<{ k: string; n: number }>(sql`select email as k, count(*)::int as n from registrations where email like ${`%@${TAG}.example.com`} group by email`);
  const prds = await db.execute<{ k: string; n: number }>(sql`select name as k, count(*)::int as n from products where category = ${TAG} group by name`);
  const all = new Map([...regs.rows, ...prds.rows].map((r) => [r.k, r.n]));
  return new Map(keys.map((k) => [k, all.get(k) ?? 0]));
}

const deferredCount = async (metricsBase: string, queue: string) => {
  const text = (await request(metricsBase, "GET", "/metrics")).text;
  const m = text.match(new RegExp(`^ingest_jobs_deferred_total\\{queue="${queue}",reason="newer_format"\\} (\\d+)`, "m"));
  return Number(m?.[1] ?? 0);
};

describe("a rolling deploy between releases of different job formats", () => {
  it("API first: an old worker leaves the new API's jobs (delayed, with the reason in the job's log and a metric), and a new worker applies each once", async () => {
    const old = await worker(1);
    const newApi = await api(2);
    const jobs = await postWrites(newApi.url, "api-first", 6);
    await waitFor(async () => (await deferredCount(old.metrics, "registrations")) > 0 && (await deferredCount(old.metrics, "products")) > 0, 20_000, "old worker defers");
    // Nothing the old worker could misread was applied by it.
    expect([...(await effects([...jobs.keys()])).values()].every((n) => n === 0)).toBe(true);
    // The carriers wait in the delayed set, in the new format, their log saying why (Bull Board shows both).
    const carrierId = carrierIdOf(jobs.get(`api-first-0@${TAG}.example.com`)!)!;
    const carrier = await queues.registrations.getJob(carrierId);
    expect(versionOf(carrier!.data)).toBe(2);
    expect(["delayed", "wait", "prioritized", "active"]).toContain(await carrier!.getState());
    const { logs } = await queues.registrations.getJobLogs(carrierId);
    expect(logs.join("\n")).toMatch(/format v2 is newer than this worker reads \(up to v1\)/);
    const status = await request(newApi.url, "GET", `/jobs/${jobs.get(`api-first-0@${TAG}.example.com`)}`);
    expect(status.body.state).not.toBe("failed");

    // The new release's workers arrive: every write applied exactly once, and the old worker took none.
    await worker(2);
    await waitFor(async () => [...(await effects([...jobs.keys()])).values()].every((n) => n >= 1), 60_000, "all applied by the new worker");
    expect([...(await effects([...jobs.keys()])).values()].every((n) => n === 1)).toBe(true);
    for (const jobId of jobs.values()) {
      const r = await request(newApi.url, "GET", `/jobs/${jobId}?waitMs=5000`);
      expect(r.body.state).toBe("completed");
    }
    expect(old.proc.output()).not.toMatch(/"level":50/);
    await Promise.all([old.proc.stop(), newApi.proc.stop()]);
  }, 120_000);

  it("workers first: a new worker applies what the old API queued before and after it started, beside an old worker", async () => {
    const oldApi = await api(1);
    const before = await postWrites(oldApi.url, "queued-before", 4);
    const newWorker = await worker(2);
    const old = await worker(1);
    const after = await postWrites(oldApi.url, "queued-after", 4);
    const keys = [...before.keys(), ...after.keys()];
    await waitFor(async () => [...(await effects(keys)).values()].every((n) => n >= 1), 60_000, "old API's writes applied");
    expect([...(await effects(keys)).values()].every((n) => n === 1)).toBe(true);
    // Old-format jobs are nobody's to leave.
    expect(await deferredCount(newWorker.metrics, "registrations")).toBe(0);
    expect(await deferredCount(old.metrics, "registrations")).toBe(0);
  }, 120_000);
});
