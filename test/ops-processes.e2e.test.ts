import { MAINTENANCE_SCHEDULER_ID } from "@ingest/jobs";
import { Queue } from "bullmq";
import { afterAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { cachePrefixFor, request, ROOT, spawnApi, spawnWorker, testEnv, waitFor, waitForJob, type WorkerProcess } from "./support/harness.js";
import { freePort } from "./support/private-redis.js";

const { databaseUrl, prefix, redisUrl } = testEnv("procs");
const workers: WorkerProcess[] = [];
afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
});

describe("worker metrics and health", () => {
  it("a worker serves /metrics with job durations and failures, and /healthz, on WORKER_METRICS_PORT", async () => {
    const port = await freePort();
    const worker = await spawnWorker(prefix, { WORKER_METRICS_PORT: String(port) });
    workers.push(worker);
    const apiPort = await freePort();
    const api = await spawnApi(prefix, apiPort);
    try {
      const base = `http://127.0.0.1:${apiPort}`;
      const ok = await request(base, "POST", "/products", { json: { name: "m", category: "c", default_price: 1 } });
      const bad = await request(base, "PATCH", "/products/123456789", { json: { name: "nobody" }, headers: { "x-request-id": "trace-from-client-42" } });
      await waitForJob(base, ok.body.jobId);
      await waitForJob(base, bad.body.jobId);
      // The caller's request id travels with the job into the worker's log lines. The
      // status can come from the ledger, committed before the worker logs the failure:
      // the line is waited for, not expected at once.
      const failedLine = /"requestId":"trace-from-client-42"[^\n]*write failed permanently/;
      await waitFor(() => failedLine.test(worker.output()), 10_000, "the worker's failure line");
      expect(worker.output()).toMatch(failedLine);
      // The API's access line for a refused request carries the request id and the status.
      const refused = await request(base, "POST", "/registrations", { json: { email: "x" }, headers: { "x-request-id": "trace-refused-7" } });
      expect(refused.status).toBe(400);
      await waitFor(() => /"id":"trace-refused-7","method":"POST","url":"\/registrations"\},"res":\{"statusCode":400\}/.test(api.output()), 5_000, "access line");
      const health = await request(`http://127.0.0.1:${port}`, "GET", "/healthz");
      expect(health.status).toBe(200);
      const metrics = await request(`http://127.0.0.1:${port}`, "GET", "/metrics");
      expect(metrics.text).toMatch(/ingest_job_duration_seconds_count\{queue="products",job_name="product.create",outcome="completed"\} 1/);
      expect(metrics.text).toMatch(/ingest_job_failures_total\{queue="products",job_name="product.patch",kind="permanent"\} 1/);
      // The API reads the fleet-wide finished counts the workers record.
      const apiMetrics = await request(base, "GET", "/metrics");
      expect(apiMetrics.text).toMatch(/ingest_jobs_finished_total\{queue="products",outcome="completed"\} [1-9]/);
      expect(apiMetrics.text).toMatch(/ingest_jobs_finished_total\{queue="products",outcome="failed"\} [1-9]/);
    } finally {
      api.proc.kill("SIGTERM");
      await api.exited;
    }
  });
});

describe("maintenance scheduler", () => {
  it("three workers upsert one scheduler, and each of its runs happens once", async () => {
    const scheduled = `${prefix.slice(0, -1)}-mnt}`;
    const every = { MAINTENANCE_EVERY_MS: "1000" };
    const three = await Promise.all([spawnWorker(scheduled, every), spawnWorker(scheduled, every), spawnWorker(scheduled, every)]);
    workers.push(...three);
    const queue = new Queue("maintenance", { connection: { url: redisUrl }, prefix: scheduled });
    try {
      const schedulers = await waitFor(async () => {
        const list = await queue.getJobSchedulers();
        return list.length ? list : undefined;
      }, 10_000, "scheduler");
      expect(schedulers.map((s) => s.key)).toEqual([MAINTENANCE_SCHEDULER_ID]);
      const started = Date.now();
      await waitFor(async () => (await queue.getCompletedCount()) >= 3, 15_000, "three runs");
      const elapsedS = (Date.now() - started) / 1_000 + 1;
      const runs = await queue.getCompletedCount();
      // Once a second whoever picks it up: never three times a second.
      expect(runs).toBeLessThanOrEqual(Math.ceil(elapsedS) + 1);
      const done = await queue.getJobs(["completed"], 0, 0);
      expect(done[0]?.returnvalue).toEqual({ ledgerRowsDeleted: expect.any(Number) });
    } finally {
      await queue.close();
    }
  });
});

describe("API cluster mode", () => {
  it("runs API_PROCESSES processes on one port and replaces one that dies", async () => {
    const port = await freePort();
    const api = await spawnApi(prefix, port, { API_PROCESSES: "2" });
    try {
      await waitFor(() => (api.output().match(/API listening/g) ?? []).length === 2, 15_000, "two processes");
      const pids = [...api.output().matchAll(/"pid":(\d+)[^\n]*API listening/g)].map((m) => Number(m[1]));
      expect(new Set(pids).size).toBe(2);
      expect((await request(`http://127.0.0.1:${port}`, "GET", "/healthz")).status).toBe(200);
      process.kill(pids[0]!, "SIGKILL");
      await waitFor(() => api.output().includes("API process died; replacing it"), 10_000, "replacement");
      await waitFor(() => (api.output().match(/API listening/g) ?? []).length === 3, 15_000, "a third process");
      expect((await request(`http://127.0.0.1:${port}`, "GET", "/healthz")).status).toBe(200);
    } finally {
      api.proc.kill("SIGTERM");
      expect(await api.exited).toBe(0);
    }
  });

  it("processes that die at start are restarted under a backoff, not in a loop", async () => {
    const port = await freePort();
    const blocker = await spawnApi(prefix, port);
    try {
      // The port is taken: every API process dies as it starts.
      const doomed = await spawnApi(prefix, port, { API_PROCESSES: "2" }, "starting API processes");
      await new Promise((r) => setTimeout(r, 4_000));
      const deaths = (doomed.output().match(/API process died; replacing it/g) ?? []).length;
      expect(deaths).toBeGreaterThan(0);
      expect(deaths).toBeLessThan(10);
      doomed.proc.kill("SIGTERM");
      await doomed.exited;
    } finally {
      blocker.proc.kill("SIGTERM");
      await blocker.exited;
    }
  });
});

describe("stopping what npm started", () => {
  // Supervisors and terminals signal the process they started: npm, not the service.
  async function startThroughNpm(port: number) {
    const child = spawn("npm", ["run", "--silent", "start:api"], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, QUEUE_PREFIX: prefix, CACHE_PREFIX: cachePrefixFor(prefix), PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    await waitFor(async () => (await request(`http://127.0.0.1:${port}`, "GET", "/healthz").catch(() => undefined))?.status === 200, 60_000, "API started through npm");
    return { child, exited, output: () => out };
  }
  const listening = async (port: number) => (await request(`http://127.0.0.1:${port}`, "GET", "/healthz").catch(() => undefined)) !== undefined;

  it("SIGTERM to `npm run start:api` drains the API and npm exits 0, leaving nothing behind", async () => {
    const port = await freePort();
    const npm = await startThroughNpm(port);
    npm.child.kill("SIGTERM");
    expect(await npm.exited).toBe(0);
    expect(npm.output()).toContain("api stopped");
    expect(await listening(port)).toBe(false);
  }, 90_000);

  it("the supervisor stops its services when its shell dies without handing the signal on", async () => {
    const port = await freePort();
    const shell = spawn("sh", ["-c", "node scripts/run.mjs start:api; true"], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, QUEUE_PREFIX: prefix, CACHE_PREFIX: cachePrefixFor(prefix), PORT: String(port), HOST: "127.0.0.1" },
      stdio: "ignore",
    });
    await waitFor(async () => (await request(`http://127.0.0.1:${port}`, "GET", "/healthz").catch(() => undefined))?.status === 200, 60_000, "API started");
    shell.kill("SIGKILL");
    await waitFor(async () => !(await listening(port)), 15_000, "API stopped after its supervisor was orphaned");
  }, 90_000);
});
