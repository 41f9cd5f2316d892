import { Queue } from "bullmq";
import { sql } from "drizzle-orm";
import { afterAll, describe, expect, inject, it } from "vitest";
import { request, spawnWorker, startApi, testDb, testEnv, waitFor, waitForJob, type WorkerProcess } from "./support/harness.js";
import { freePort } from "./support/private-redis.js";

const { prefix, redisUrl } = testEnv("deps");
const { db, close: closeDb } = testDb();
const workers: WorkerProcess[] = [];
afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await closeDb();
});

const deadDatabase = async () => `postgres://postgres@127.0.0.1:${await freePort()}/nowhere`;
/** A server that answers, with a database name that is wrong: a misconfiguration, not an outage. */
const missingDatabase = () => {
  const url = new URL(inject("databaseUrl"));
  url.pathname = `/${url.pathname.slice(1)}_missing`;
  return url.toString();
};
const count = async (email: string) =>
  (await db.execute(sql`select 1 from registrations where email = ${email}`)).rows.length;

describe("PostgreSQL unavailable", () => {
  it("writes are still accepted (queued), readiness says so, and they are applied once the database is back", async () => {
    const api = await startApi(prefix, { DATABASE_URL: await deadDatabase() });
    try {
      const r = await request(api.url, "POST", "/registrations", { json: { email: "pgdown@example.com", name: "Queued" } });
      expect(r.status).toBe(202);
      const ready = await request(api.url, "GET", "/readyz");
      expect(ready.status).toBe(503);
      expect(ready.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(ready.body).toMatchObject({ status: 503, checks: { postgres: "down", redis: "up" } });
      expect((await request(api.url, "GET", `/jobs/${r.body.jobId}`)).body.state).toBe("queued");

      // A worker that cannot reach PostgreSQL keeps the job (it waits, spending no retries) instead of losing it.
      const blind = await spawnWorker(prefix, { DATABASE_URL: await deadDatabase() });
      workers.push(blind);
      await waitFor(async () => (await request(api.url, "GET", `/jobs/${r.body.jobId}`)).body.attempts >= 1, 10_000, "a failed attempt");
      expect(await count("pgdown@example.com")).toBe(0);
      await blind.stop();

      // The database is back (a worker that reaches it): the write lands once.
      workers.push(await spawnWorker(prefix));
      await waitFor(async () => (await count("pgdown@example.com")) === 1, 30_000, "applied after recovery");
    } finally {
      await api.close();
    }
  });
});

describe("recovery by operators", () => {
  it("a job that failed for good is retried from Bull Board once the cause is fixed, and applies exactly once", async () => {
    const own = `${prefix.slice(0, -1)}-retry}`;
    const api = await startApi(own, { ADMIN_USER: "ops", ADMIN_PASSWORD: "retry-pass" });
    const queue = new Queue("registrations", { connection: { url: redisUrl }, prefix: own });
    // Not an outage (that parks jobs without failing them) but a worker misconfigured.
    const blind = await spawnWorker(own, { DATABASE_URL: missingDatabase() });
    try {
      // One attempt only, so it fails for good at once while the cause is there.
      const job = await queue.add(
        "registration.create",
        { payload: { registration: { email: "retried@example.com", name: "Retried" } } },
        { jobId: "reg-00000000-0000-4000-8000-00000000f00d", attempts: 1 },
      );
      await waitFor(async () => (await job.getState()) === "failed", 15_000, "failed for good");
      await blind.stop();
      const good = await spawnWorker(own);
      workers.push(good);

      const auth = { authorization: `Basic ${Buffer.from("ops:retry-pass").toString("base64")}` };
      const retry = await request(api.url, "PUT", "/admin/queues/api/queues/registrations/retry/failed", { headers: auth });
      expect(retry.status).toBe(200);
      const status = await waitForJob(api.url, job.id!, 15_000);
      expect(status).toMatchObject({ state: "completed", result: { outcome: "created" } });
      // Retrying again finds nothing failed; the registration exists once.
      await request(api.url, "PUT", "/admin/queues/api/queues/registrations/retry/failed", { headers: auth });
      expect(await count("retried@example.com")).toBe(1);
    } finally {
      await blind.stop();
      await queue.close();
      await api.close();
    }
  });
});
