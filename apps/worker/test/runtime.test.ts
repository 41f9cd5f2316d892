// The worker runtime run in process beside the API: writes applied, unknown jobs refused, nothing open after close().
import { QUEUE_NAMES, type QueueName } from "@ingest/jobs";
import { randomUUID } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { cachePrefixFor, request, startApi, testEnv, waitFor, waitForJob } from "../../../test/support/harness.js";
import { freePort } from "../../../test/support/private-redis.js";
import { loadEnv } from "../src/env.js";
import { createLogger } from "../src/logger.js";
import { createWorkerRuntime } from "../src/runtime.js";
import { createScratchDatabase } from "../../../test/support/scratch.js";

/** This process's open sockets, servers and timers that keep it alive, by kind. */
function openResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo().sort()) {
    if (/^(TCP|Pipe|Timeout|Immediate)/.test(kind)) counts[kind] = (counts[kind] ?? 0) + 1;
  }
  return counts;
}
// Before anything of this file connects: what close() must come back to.
const before = openResources();

// A database of this file's own: its sessions are counted by name at the end.
const scratch = await createScratchDatabase("worker_runtime");
const { prefix, redisUrl } = testEnv("worker-runtime");
const api = await startApi(prefix, { DATABASE_URL: scratch.url });
const metricsPort = await freePort();
const env = loadEnv({
  DATABASE_URL: scratch.url,
  REDIS_URL: redisUrl,
  QUEUE_PREFIX: prefix,
  CACHE_PREFIX: cachePrefixFor(prefix),
  NODE_ENV: "test",
  LOG_LEVEL: "silent",
  WORKER_METRICS_PORT: String(metricsPort),
  // The stall test below wedges a lane: found within a second or two.
  WORKER_STALL_AFTER_MS: "1000",
});
const worker = createWorkerRuntime(env, { log: createLogger(env.LOG_LEVEL, false) });
const queues = api.runtime.deps.queues;
const metricsUrl = `http://127.0.0.1:${metricsPort}`;
afterAll(async () => {
  await worker.close();
  await api.close();
  await scratch.drop();
});

const workerSessions = async () =>
  (await scratch.query<{ n: number }>("select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name like 'ingest-worker%'"))[0]!.n;

describe("the worker runtime, in process", () => {
  it("has a Worker for every lane, idle until start()", async () => {
    expect(worker.workers.map((w) => w.name).sort()).toEqual([...QUEUE_NAMES].sort());
    expect(worker.workers.every((w) => !w.isRunning())).toBe(true);
    await worker.start();
    expect(worker.workers.every((w) => w.isRunning())).toBe(true);
  });

  it("applies a registration posted to the API, and sends its welcome email through the email lane", async () => {
    const email = `runtime-${randomUUID().slice(0, 8)}@example.com`;
    const accepted = await request(api.url, "POST", "/registrations", { json: { email, name: "Ada" } });
    expect(accepted.status, accepted.text).toBe(202);
    const job = await waitForJob(api.url, accepted.body.jobId);
    expect(job).toMatchObject({ state: "completed", result: { outcome: "created" } });
    const { registrationId } = job.result as { registrationId: number };
    const rows = await scratch.query("select email from registrations where id = $1", [registrationId]);
    expect(rows).toEqual([{ email }]);
    // Relayed to the emails queue at the commit, and "sent" by the log mailer (no SMTP_URL).
    await waitFor(
      async () => (await scratch.query<{ status: string }>("select status from email_sends where registration_id = $1", [registrationId]))[0]?.status === "sent",
      15_000,
      "the welcome email",
    );
  });

  it("every lane fails a job name it has no handler for at once, with the same error", async () => {
    const added = await Promise.all(QUEUE_NAMES.map((name) => queues[name].add("no.such-job", {}, { attempts: 3 })));
    for (const [k, name] of QUEUE_NAMES.entries()) {
      const failed = await waitFor(async () => {
        const job = await queues[name].getJob(added[k]!.id!);
        return job?.finishedOn ? job : undefined;
      }, 15_000, `the unknown job of ${name}`);
      expect([name, failed.failedReason, failed.attemptsMade]).toEqual([name, 'UNKNOWN_JOB: no handler for job name "no.such-job"', 1]);
    }
  });

  it("serves /healthz and the lanes' metrics, labelled by queue, job name and outcome", async () => {
    expect(worker.health().status).toBe(200);
    const health = await fetch(`${metricsUrl}/healthz`);
    expect([health.status, await health.json()]).toEqual([200, { status: "ok", checks: { redis: "up" } }]);
    const metrics = await (await fetch(`${metricsUrl}/metrics`)).text();
    expect(metrics).toMatch(/ingest_job_duration_seconds_count\{queue="registrations",job_name="registration.create",outcome="completed"\} 1/);
    expect(metrics).toMatch(/ingest_job_duration_seconds_count\{queue="emails",job_name="email.welcome-batch",outcome="completed"\} 1/);
  });

  it.each([
    ["waits", {}],
    ["is delayed past its time (a parked write)", { delay: 50 }],
  ])("a lane whose fetch loop is wedged while a job %s turns /healthz to 503 naming it, and back once it takes jobs", async (_, delayed) => {
    // BullMQ's fetch of the bulk lane hangs (as after a lost Redis reply) until released.
    const bulk = worker.workers.find((w) => w.name === "bulk")! as unknown as { backend: { moveToActive: (...args: unknown[]) => Promise<unknown> } };
    const fetch = bulk.backend.moveToActive.bind(bulk.backend);
    let release!: () => void;
    const hung = new Promise<void>((resolve) => (release = resolve));
    bulk.backend.moveToActive = async (...args) => {
      await hung;
      return fetch(...args);
    };
    try {
      const waiting = await queues.bulk.add("no.such-job", {}, { attempts: 1, ...delayed });
      const stalled = await waitFor(() => (worker.health().status === 503 ? worker.health() : undefined), 10_000, "the stall found");
      expect(JSON.parse(stalled.body)).toMatchObject({
        type: "/problems/lane-stalled",
        status: 503,
        checks: { redis: "up", lanes: "stalled" },
        stalledLanes: [{ lane: "bulk", waiting: 1 }],
      });
      expect((await globalThis.fetch(`${metricsUrl}/healthz`)).status).toBe(503);
      release();
      await waitFor(async () => (await queues.bulk.getJob(waiting.id!))?.finishedOn, 10_000, "the job taken once released");
      await waitFor(() => worker.health().status === 200, 10_000, "healthy again");
    } finally {
      release();
      bulk.backend.moveToActive = fetch;
    }
  });

  it("close() stops every lane and leaves no Redis client, PostgreSQL session, server or timer open", async () => {
    const workersOf = (name: QueueName) => queues[name].getWorkersCount();
    expect(await workersOf("registrations")).toBeGreaterThan(0);
    expect(await workerSessions()).toBeGreaterThan(0);

    await worker.close();
    expect(worker.workers.every((w) => !w.isRunning())).toBe(true);
    expect(worker.health().status).toBe(503);
    await expect(fetch(`${metricsUrl}/healthz`)).rejects.toThrow();
    for (const name of QUEUE_NAMES) expect([name, await workersOf(name)]).toEqual([name, 0]);
    expect(await workerSessions()).toBe(0);

    // With the API and the database gone too, this process holds what it held before.
    await api.close();
    await scratch.drop();
    const same = () => JSON.stringify(openResources()) === JSON.stringify(before);
    await waitFor(same, 5_000, "the open resources of before").catch(() => undefined);
    expect(openResources()).toEqual(before);
  });
});
