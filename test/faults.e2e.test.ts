import pg from "pg";
import { sql } from "drizzle-orm";
import { afterAll, describe, expect, it } from "vitest";
import { request, spawnApi, spawnWorker, startApi, testDb, testEnv, waitFor, waitForJob, type WorkerProcess } from "./support/harness.js";
import { freePort, PrivateRedis } from "./support/private-redis.js";

const { prefix, databaseUrl } = testEnv("faults");
const { db, close: closeDb } = testDb();
afterAll(() => closeDb());

const registration = (n: string) => ({ email: `${n}@faults.example.com`, name: n });
// Short locks so a killed worker's job comes back within the test's patience.
const FAST_RECOVERY = { LOCK_DURATION_MS: "2000", STALLED_INTERVAL_MS: "1000" };

describe("stopping with the queue Redis gone", () => {
  it("SIGTERM ends the worker and the API within the shutdown deadline plus a short grace, exit 0, though their connections cannot close", async () => {
    const redis = new PrivateRedis(await freePort());
    await redis.start();
    const own = `${prefix.slice(0, -1)}-gone}`;
    const env = { REDIS_URL: redis.url, SHUTDOWN_TIMEOUT_MS: "1000" };
    const worker = await spawnWorker(own, env);
    const api = await spawnApi(own, await freePort(), env);
    try {
      await redis.kill();
      await new Promise((r) => setTimeout(r, 500));
      const started = performance.now();
      const [workerCode, apiCode] = await Promise.all([worker.stop(), api.stop()]);
      expect([workerCode, apiCode]).toEqual([0, 0]);
      // 1 s for active work, at most 5 s to close connections, and some slack for a busy machine.
      expect(performance.now() - started).toBeLessThan(10_000);
    } finally {
      worker.proc.kill("SIGKILL");
      api.proc.kill("SIGKILL");
      await redis.remove();
    }
  }, 30_000);
});

describe("queue Redis unavailable", () => {
  it("writes answer 503 with Retry-After within milliseconds and recover without a restart", async () => {
    const redis = new PrivateRedis(await freePort());
    await redis.start();
    const api = await startApi(prefix, { REDIS_URL: redis.url });
    try {
      expect((await request(api.url, "POST", "/registrations", { json: registration("before") })).status).toBe(202);

      await redis.kill();
      await waitFor(async () => (await request(api.url, "GET", "/readyz")).status === 503, 5_000, "readyz to fail");
      for (let i = 0; i < 5; i++) {
        const r = await request(api.url, "POST", "/registrations", { json: registration(`down${i}`) });
        expect(r.status).toBe(503);
        expect(r.headers.get("retry-after")).toMatch(/^\d+$/);
        expect(r.headers.get("content-type")).toMatch(/problem\+json/);
        expect(r.ms).toBeLessThan(500);
      }
      const status = await request(api.url, "GET", "/jobs/reg-00000000-0000-4000-8000-000000000000");
      expect(status.status).toBe(503);

      await redis.start();
      await waitFor(async () => (await request(api.url, "GET", "/readyz")).status === 200, 10_000, "readyz to recover");
      const after = await request(api.url, "POST", "/registrations", { json: registration("after") });
      expect(after.status).toBe(202);
    } finally {
      await api.close();
      await redis.remove();
    }
  });

  it("an API started while Redis is down answers writes 503 at once", async () => {
    const api = await startApi(prefix, { REDIS_URL: `redis://127.0.0.1:${await freePort()}` }, { skipReady: true });
    try {
      const r = await request(api.url, "POST", "/products", { json: { name: "x", category: "c", default_price: 1 } });
      expect(r.status).toBe(503);
      expect(r.ms).toBeLessThan(500);
      expect((await request(api.url, "GET", "/readyz")).status).toBe(503);
      expect((await request(api.url, "GET", "/healthz")).status).toBe(200);
    } finally {
      await api.close();
    }
  });
});

describe("worker processes dying and stopping", () => {
  /** Blocks the product's edits inside their transaction by holding its advisory lock. */
  async function holdProduct(productId: number) {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    await client.query("begin");
    await client.query("select pg_advisory_xact_lock(1, $1)", [productId]);
    return {
      release: async () => {
        await client.query("rollback");
        await client.end();
      },
    };
  }
  // Connections waiting for this product's order lock: only this test's worker can be
  // there (other files' workers share the database, and wait on locks of their own).
  const waitersSql = (productId: number) =>
    sql`select pid from pg_locks where locktype = 'advisory' and classid = 1 and objid = ${productId} and objsubid = 2 and not granted`;
  const blockedWorkers = async (productId: number) => (await db.execute(waitersSql(productId))).rows.length;

  it("a worker SIGKILLed mid-job loses and doubles nothing once another worker picks the job up", async () => {
    const api = await startApi(prefix);
    const workers: WorkerProcess[] = [];
    try {
      const id = 810_001;
      const hold = await holdProduct(id);
      const victim = await spawnWorker(prefix, FAST_RECOVERY);
      workers.push(victim);
      const r = await request(api.url, "PUT", `/products/${id}`, { json: { name: "survivor", category: "c", default_price: 5, features: [{ feature: "f", value: "v" }] } });
      expect(r.status).toBe(202);
      // The job is inside its transaction, waiting on the lock: kill the worker there.
      await waitFor(async () => (await blockedWorkers(id)) > 0, 10_000, "worker mid-job");
      expect((await request(api.url, "GET", `/jobs/${r.body.jobId}`)).body.state).toBe("active");
      victim.proc.kill("SIGKILL");
      await victim.exited;
      await hold.release();

      workers.push(await spawnWorker(prefix, FAST_RECOVERY));
      const job = await waitForJob(api.url, r.body.jobId, 20_000);
      expect(job).toMatchObject({ state: "completed", result: { productId: id } });
      expect((await db.execute(sql`select name from products where id = ${id}`)).rows).toEqual([{ name: "survivor" }]);
      expect((await db.execute(sql`select 1 from features where product_id = ${id}`)).rows).toHaveLength(1);
      expect((await db.execute(sql`select 1 from job_ledger where job_id = ${r.body.jobId}`)).rows).toHaveLength(1);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
      await api.close();
    }
  });

  it("a connection cut under a job (PostgreSQL restarting) parks the job without spending a retry, and it applies once", async () => {
    const api = await startApi(prefix);
    const id = 810_003;
    const hold = await holdProduct(id);
    const worker = await spawnWorker(prefix);
    try {
      const r = await request(api.url, "PUT", `/products/${id}`, { json: { name: "retried", category: "c", default_price: 5 } });
      await waitFor(async () => (await blockedWorkers(id)) > 0, 10_000, "worker mid-job");
      await db.execute(sql`select pg_terminate_backend(pid) from (${waitersSql(id)}) waiting`);
      await hold.release();
      const job = await waitForJob(api.url, r.body.jobId, 20_000).catch(async (e) => {
        console.log(worker.output(), JSON.stringify((await request(api.url, "GET", `/jobs/${r.body.jobId}`)).body));
        throw e;
      });
      expect(job).toMatchObject({ state: "completed", attempts: 1, result: { productId: id } });
      expect(worker.output()).toContain("PostgreSQL unavailable; job parked");
      expect((await db.execute(sql`select name from products where id = ${id}`)).rows).toEqual([{ name: "retried" }]);
    } finally {
      await worker.stop();
      await api.close();
    }
  });

  it("SIGTERM lets the active job finish, then the worker exits 0", async () => {
    const api = await startApi(prefix);
    const id = 810_002;
    const hold = await holdProduct(id);
    const worker = await spawnWorker(prefix);
    try {
      const r = await request(api.url, "PUT", `/products/${id}`, { json: { name: "graceful", category: "c", default_price: 5 } });
      await waitFor(async () => (await blockedWorkers(id)) > 0, 10_000, "worker mid-job");
      worker.proc.kill("SIGTERM");
      // Still finishing, not gone.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(worker.proc.exitCode).toBeNull();
      await hold.release();
      expect(await worker.exited).toBe(0);
      expect(worker.output()).toContain("worker stopped");
      const status = await request(api.url, "GET", `/jobs/${r.body.jobId}`);
      expect(status.body).toMatchObject({ state: "completed", result: { productId: id } });
    } finally {
      await worker.stop();
      await api.close();
    }
  });
});
