// The compiled API and two workers reach the queue Redis through fault proxies: latency,
// a stall, a reset of every connection and black holes must cost no write and need no restart.
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { FaultProxy, type FaultMode } from "./support/fault-proxy.js";
import { request, spawnApi, spawnWorker, testDb, testEnv, waitFor, type ApiProcess, type WorkerProcess } from "./support/harness.js";
import { freePort } from "./support/private-redis.js";

const { prefix, redisUrl } = testEnv("netfaults");
const CATEGORY = `netfaults-${inject("runId")}`;
const CLIENTS = 6;
// Generous: the machine may be busy with other work while this runs.
const RECOVERY_BOUND_MS = 40_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const { db, close: closeDb } = testDb();

let api: ApiProcess;
let apiBase: string;
let apiPath: FaultProxy;
let workerPath: FaultProxy;
const workers: { proc: WorkerProcess; health: string; pid: number }[] = [];

// Every write a client sent until the API answered 202: name (= Idempotency-Key) → jobId.
const accepted = new Map<string, string>();
const unexpected: string[] = [];
let stopClients = false;
// While set, clients send nothing new (a write under way still finishes).
let pauseClients = false;
// Set once the test is over: a write still retrying gives up.
let abandon = false;
let clients: Promise<void>[] = [];
const figures: string[] = [];

/** Posts one keyed product write until it is accepted, retrying 503/409/429 and network errors with the same key. */
async function write(key: string): Promise<void> {
  while (!abandon) {
    try {
      const res = await fetch(`${apiBase}/products`, {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": key },
        body: JSON.stringify({ name: key, category: CATEGORY, default_price: "1.00" }),
        signal: AbortSignal.timeout(10_000),
      });
      const body = (await res.json().catch(() => ({}))) as { jobId?: string };
      if (res.status === 202 && body.jobId) {
        accepted.set(key, body.jobId);
        return;
      }
      if (![503, 409, 429].includes(res.status)) unexpected.push(`${key}: ${res.status}`);
    } catch {
      // timed out or cut: the same key again
    }
    await sleep(100 + Math.random() * 200);
  }
}

async function client(n: number): Promise<void> {
  for (let i = 0; !stopClients; i++) {
    await write(`nf-${n}-${i}`);
    await sleep(50);
    while (pauseClients && !stopClients) await sleep(50);
  }
}

/** Names of the accepted writes whose product row exists. */
async function appliedNames(): Promise<Set<string>> {
  const { rows } = await db.execute<{ name: string }>(sql`select name from products where category = ${CATEGORY}`);
  return new Set(rows.map((r) => r.name));
}

/** Waits until every write accepted so far is applied; resolves with how long that took. */
async function allApplied(label: string, timeoutMs = RECOVERY_BOUND_MS): Promise<number> {
  const started = Date.now();
  const keys = [...accepted.keys()];
  await waitFor(async () => {
    const applied = await appliedNames();
    return keys.every((k) => applied.has(k));
  }, timeoutMs, `${label}: every accepted write applied`).catch(async (err) => {
    const applied = await appliedNames();
    const missing = keys.filter((k) => !applied.has(k));
    console.log(`${label}: ${missing.length} of ${keys.length} accepted writes not applied`);
    // Their warnings and errors say what the connections went through.
    for (const w of workers) console.log(`--- worker ${w.pid}\n${problemLines(w.proc.output())}`);
    throw err;
  });
  return Date.now() - started;
}

const problemLines = (log: string) =>
  log
    .split("\n")
    .filter((l) => /"level":(40|50|60)/.test(l))
    .slice(-40)
    .join("\n");

const healthOf = async (base: string) => (await request(base, "GET", "/healthz").catch(() => undefined))?.status;
const everyWorker = async (status: number) => (await Promise.all(workers.map((w) => healthOf(w.health)))).every((s) => s === status);

/** Runs clients until `more` further writes are accepted (so the fault has writes around it). */
async function acceptedGrowsBy(more: number, label: string): Promise<void> {
  const target = accepted.size + more;
  await waitFor(() => accepted.size >= target, 60_000, `${label}: ${more} more writes accepted`);
}

function both(mode: FaultMode): void {
  apiPath.set(mode);
  workerPath.set(mode);
}

beforeAll(async () => {
  const upstream = FaultProxy.upstreamOf(redisUrl);
  [apiPath, workerPath] = await Promise.all([FaultProxy.start(upstream), FaultProxy.start(upstream)]);
  // Only the queue Redis goes through the proxies; the cache is not under test here.
  const port = await freePort();
  api = await spawnApi(prefix, port, { REDIS_URL: apiPath.urlFor(redisUrl), CACHE_REDIS_URL: redisUrl });
  apiBase = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 2; i++) {
    const metricsPort = await freePort();
    const proc = await spawnWorker(prefix, {
      REDIS_URL: workerPath.urlFor(redisUrl),
      CACHE_REDIS_URL: redisUrl,
      WORKER_METRICS_PORT: String(metricsPort),
      // Unhealthy within the test's faults (seconds), not production's patience.
      WORKER_UNHEALTHY_AFTER_MS: "3000",
      // A fetch whose reply a fault swallowed leaves its job active under a lock nobody
      // renews until the lock lapses and the stalled-job check runs (60 s by default):
      // shorter, they come back within the test's patience. Not much shorter: renewals
      // must still get through 200 ms of latency on a busy machine.
      LOCK_DURATION_MS: "15000",
      STALLED_INTERVAL_MS: "5000",
    });
    workers.push({ proc, health: `http://127.0.0.1:${metricsPort}`, pid: proc.proc.pid! });
  }
  await waitFor(() => everyWorker(200), 20_000, "workers healthy");
  clients = Array.from({ length: CLIENTS }, (_, n) => client(n));
  await acceptedGrowsBy(50, "warm-up");
}, 60_000);

afterAll(async () => {
  stopClients = true;
  abandon = true;
  apiPath?.pass();
  workerPath?.pass();
  await Promise.all([api?.stop(), ...workers.map((w) => w.proc.stop())]);
  await Promise.all([apiPath?.close(), workerPath?.close()]);
  await closeDb();
  console.log(`network faults:\n  ${figures.join("\n  ")}`);
});

describe("network faults between the processes and the queue Redis", () => {
  it("workers that reconnect into a black hole detect it, report unhealthy, and apply the backlog once it ends, without a restart", async () => {
    // Only the workers' path: the API keeps accepting writes, which pile up meanwhile.
    const started = Date.now();
    workerPath.resetAll();
    workerPath.set({ kind: "blackhole" });
    await waitFor(() => everyWorker(503), 20_000, "worker /healthz 503 during the black hole");
    const detectedMs = Date.now() - started;
    const problem = await request(workers[0]!.health, "GET", "/healthz");
    expect(problem.headers.get("content-type")).toMatch(/application\/problem\+json/);
    expect(problem.body).toMatchObject({ status: 503, checks: { redis: "down" } });
    // Since the last answer before the fault: the watchdog pings every few seconds.
    const since = Date.parse(problem.body.redisUnreachableSince);
    expect(since).toBeLessThanOrEqual(started + 500);
    expect(since).toBeGreaterThan(started - 15_000);
    await acceptedGrowsBy(20, "backlog during the black hole");
    await sleep(Math.max(0, 8_000 - (Date.now() - started)));
    const backlog = accepted.size - (await appliedNames()).size;
    workerPath.pass();
    const ended = Date.now();
    const appliedMs = await allApplied("after the black hole");
    await waitFor(() => everyWorker(200), 20_000, "worker /healthz 200 after the black hole");
    figures.push(
      `black hole while reconnecting (${ended - started} ms): /healthz 503 after ${detectedMs} ms; ` +
        `a backlog of ${backlog} applied ${appliedMs} ms after it ended; healthy again after ${Date.now() - ended} ms`,
    );
  }, 120_000);

  it("200 ms of latency each way slows writes and jobs but loses none", async () => {
    both({ kind: "latency", ms: 200 });
    await acceptedGrowsBy(20, "writes under latency");
    // Applied while the latency is still there, once no new job arrives: while jobs keep
    // coming, a BullMQ worker fetches one after another (a round trip each) up to its
    // concurrency before it starts any (see Known limits in docs/RELIABILITY.md).
    pauseClients = true;
    const appliedMs = await allApplied("under latency").finally(() => (pauseClients = false));
    both({ kind: "pass" });
    figures.push(`200 ms latency: writes accepted under it, and applied under it ${appliedMs} ms after the last one`);
  }, 120_000);

  it("a 10 s stall of every connection is ridden out", async () => {
    const started = Date.now();
    both({ kind: "stall" });
    await sleep(10_000);
    both({ kind: "pass" });
    const ended = Date.now();
    await acceptedGrowsBy(10, "writes after the stall");
    const appliedMs = await allApplied("after the stall");
    await waitFor(() => everyWorker(200), 20_000, "worker /healthz 200 after the stall");
    figures.push(`10 s stall (${ended - started} ms): everything applied ${Date.now() - ended} ms after it ended (${appliedMs} ms of that waiting for the last)`);
  }, 120_000);

  it("a reset of every connection is ridden out", async () => {
    const started = Date.now();
    apiPath.resetAll();
    workerPath.resetAll();
    await acceptedGrowsBy(10, "writes after the reset");
    await allApplied("after the reset");
    figures.push(`reset of every connection: new writes accepted and everything applied within ${Date.now() - started} ms`);
  }, 120_000);

  it("live connections that fall into a black hole are detected by the API and the workers, which recover once it ends", async () => {
    const started = Date.now();
    both({ kind: "blackhole" });
    await waitFor(async () => (await request(apiBase, "GET", "/readyz")).status === 503, 20_000, "API /readyz 503 in the black hole");
    const apiDetectedMs = Date.now() - started;
    await waitFor(() => everyWorker(503), 20_000, "worker /healthz 503 in the black hole");
    const workersDetectedMs = Date.now() - started;
    await sleep(Math.max(0, 8_000 - (Date.now() - started)));
    both({ kind: "pass" });
    const ended = Date.now();
    await waitFor(async () => (await request(apiBase, "GET", "/readyz")).status === 200, RECOVERY_BOUND_MS, "API /readyz 200 after the black hole");
    const apiReadyMs = Date.now() - ended;
    await acceptedGrowsBy(10, "writes after the black hole");
    await allApplied("after the black hole of live connections");
    await waitFor(() => everyWorker(200), 20_000, "worker /healthz 200 after the black hole");
    figures.push(
      `black hole of live connections (${ended - started} ms): API /readyz 503 after ${apiDetectedMs} ms, workers /healthz 503 after ${workersDetectedMs} ms; ` +
        `API ready ${apiReadyMs} ms and everything applied ${Date.now() - ended} ms after it ended`,
    );
  }, 120_000);

  it("every accepted write is applied exactly once, and no process was restarted", async () => {
    stopClients = true;
    await Promise.all(clients);
    await allApplied("at the end");
    const { rows } = await db.execute<{ name: string; n: number }>(
      sql`select name, count(*)::int as n from products where category = ${CATEGORY} group by name`,
    );
    const rowsByName = new Map(rows.map((r) => [r.name, r.n]));
    const lost = [...accepted.keys()].filter((k) => !rowsByName.has(k));
    const doubled = rows.filter((r) => r.n > 1).map((r) => r.name);
    // Every write is retried until accepted, so a row no client heard a 202 for is not expected either.
    const unannounced = rows.filter((r) => !accepted.has(r.name)).length;
    figures.push(`${accepted.size} writes accepted: ${lost.length} lost, ${doubled.length} doubled, ${unannounced} applied without a 202 seen`);
    expect(unexpected).toEqual([]);
    expect(lost).toEqual([]);
    expect(doubled).toEqual([]);
    expect(unannounced).toBe(0);
    for (const w of workers) {
      expect(w.proc.proc.exitCode).toBeNull();
      expect(w.proc.proc.pid).toBe(w.pid);
    }
    expect(api.proc.exitCode).toBeNull();
  }, 120_000);
});
