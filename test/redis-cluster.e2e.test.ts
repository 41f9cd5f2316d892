import { sql } from "drizzle-orm";
import { setTimeout as sleep } from "node:timers/promises";
import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cachePrefixFor, request, spawnWorker, startApi, testDb, testEnv, waitFor, waitForJob, type Api, type Reply, type WorkerProcess } from "./support/harness.js";
import { clusterBinariesFound, PrivateRedisCluster } from "./support/redis-cluster.js";

// The whole service on a real 3-master Redis Cluster (each master with a replica),
// including a manual failover of the master that holds the queues' slot under load.
// Like every integration test here, these fail (never skip) when what they need is missing.
const found = clusterBinariesFound();

const { prefix } = testEnv("cluster");
const marker = `cl${Date.now().toString(36)}`;
let cluster: PrivateRedisCluster;
let api: Api;
let worker: WorkerProcess;
const { db, close: closeDb } = testDb();

beforeAll(async () => {
  if (!found) throw new Error("redis-server and redis-cli must be on PATH for the Redis Cluster tests (apt-get install redis-server)");
  cluster = new PrivateRedisCluster(3);
  await cluster.start();
  const env = { REDIS_CLUSTER_NODES: cluster.nodesEnv };
  // No in-process copies: every HIT below comes from the cluster.
  // A 202 once a replica has the job: a failover (or a hung master back as a replica) then loses none.
  api = await startApi(prefix, { ...env, CACHE_LOCAL_TTL_MS: "0", RATE_LIMIT_PER_MIN: "1000000", REDIS_WAIT_REPLICAS: "1" });
  // Short locks: a job whose completion a frozen master swallowed runs again within seconds.
  worker = await spawnWorker(prefix, { ...env, LOCK_DURATION_MS: "5000", STALLED_INTERVAL_MS: "5000", SHUTDOWN_TIMEOUT_MS: "5000" });
}, 60_000);

// Bounded, and the cluster goes whatever happens: a failover test can leave a client
// waiting on a node that is now someone else's replica, and a hung hook would leave six
// redis-servers and a worker behind.
afterAll(async () => {
  try {
    await Promise.race([worker?.stop(), sleep(15_000)]);
    worker?.proc.kill("SIGKILL");
    await Promise.race([api?.close(), sleep(10_000)]);
    await closeDb();
  } finally {
    await cluster?.stop();
  }
}, 60_000);

const post = (path: string, json: unknown) => request(api.url, "POST", path, { json });
const rows = async <T>(query: ReturnType<typeof sql>) => (await db.execute(query)).rows as T[];

async function completed(r: Reply) {
  expect(r.status, r.text).toBe(202);
  const job = await waitForJob(api.url, r.body.jobId);
  expect(job.state, JSON.stringify(job)).toBe("completed");
  return job;
}

describe("on a Redis Cluster", () => {
  it("the API and the worker run on ioredis Cluster connections, and the queue keys sit in one slot", async () => {
    const { slot, master } = await cluster.ownerOf(prefix);
    await completed(await post("/registrations", { email: `${marker}-first@example.com`, name: "First" }));
    // Every key of the prefix (queues, idempotency, sequences) is on the master of its slot.
    const perMaster = await cluster.keysPerMaster(`${prefix}*`);
    expect(perMaster.get(master.addr), `slot ${slot}`).toBeGreaterThan(0);
    expect([...perMaster].filter(([addr, n]) => addr !== master.addr && n > 0)).toEqual([]);
  });

  it("registrations and product writes go end to end: 202, the job completes, the rows are in PostgreSQL", async () => {
    const reg = await completed(await post("/registrations", { email: `${marker}-ada@example.com`, name: "Ada", plan: "pro" }));
    expect(reg.result).toEqual({ registrationId: expect.any(Number), outcome: "created" });
    const created = await completed(await post("/products", { name: `${marker}-lamp`, category: "lights", default_price: 30 }));
    const id = created.result.productId as number;
    // An ordered edit takes its sequence number in the producer's Lua script (several keys, one slot).
    const headers = { "Idempotency-Key": `${marker}-patch` };
    const patch = await request(api.url, "PATCH", `/products/${id}`, { json: { default_price: 35 }, headers });
    await completed(patch);
    const replay = await request(api.url, "PATCH", `/products/${id}`, { json: { default_price: 35 }, headers });
    expect(replay.body.jobId).toBe(patch.body.jobId);
    const [row] = await rows<{ name: string; default_price: string }>(sql`select name, default_price from products where id = ${id}`);
    expect(row).toMatchObject({ name: `${marker}-lamp` });
    expect(Number(row!.default_price)).toBe(35);
    const [r] = await rows<{ n: number }>(sql`select count(*)::int as n from registrations where email = ${`${marker}-ada@example.com`}`);
    expect(r!.n).toBe(1);
  });

  it("product reads are a MISS then a HIT from the cluster, and the cache keys spread over the masters", async () => {
    const ids: number[] = [];
    for (let i = 0; i < 12; i++) {
      const job = await completed(await post("/products", { name: `${marker}-read-${i}`, category: "c", default_price: i + 1 }));
      ids.push(job.result.productId);
    }
    for (const id of ids) {
      const miss = await request(api.url, "GET", `/products/${id}`);
      expect(miss.status).toBe(200);
      expect(miss.headers.get("x-cache")).toBe("MISS");
      const hit = await request(api.url, "GET", `/products/${id}`);
      expect(hit.headers.get("x-cache")).toBe("HIT");
      expect(hit.body.id).toBe(id);
    }
    // A write invalidates through the cluster (versions bumped across slots, then published).
    const edited = ids[0]!;
    await completed(await request(api.url, "PATCH", `/products/${edited}`, { json: { name: `${marker}-renamed` } }));
    const after = await request(api.url, "GET", `/products/${edited}`);
    expect(after.headers.get("x-cache")).toBe("MISS");
    expect(after.body.name).toBe(`${marker}-renamed`);

    const perMaster = await cluster.keysPerMaster(`${cachePrefixFor(prefix)}:*`);
    const used = [...perMaster.values()].filter((n) => n > 0).length;
    expect(used, JSON.stringify([...perMaster])).toBeGreaterThanOrEqual(2);
  });

  it("a failover of the queues' master under continuous writes loses no accepted write and applies each once", async () => {
    const { slot, master, replica } = await cluster.ownerOf(prefix);
    const TOTAL = 500;
    const EVERY_MS = 8;
    const FAILOVER_AT = 150;
    type Sent = { i: number; at: number; status: number; jobId?: string; text: string };
    const sent: Promise<Sent>[] = [];
    let failoverStarted = 0;
    let failoverDone = 0;
    let failover: Promise<void> | undefined;
    const t0 = performance.now();
    for (let i = 0; i < TOTAL; i++) {
      const wait = t0 + i * EVERY_MS - performance.now();
      if (wait > 0) await sleep(wait);
      if (i === FAILOVER_AT) {
        failoverStarted = performance.now();
        failover = cluster.failover(replica, slot).then(() => void (failoverDone = performance.now()));
      }
      const at = performance.now();
      sent.push(
        post("/products", { name: `${marker}-fo-${i}`, category: "failover", default_price: 1 }).then(
          (r) => ({ i, at, status: r.status, jobId: r.body?.jobId, text: r.text }),
          (err: Error) => ({ i, at, status: 0, text: err.message }),
        ),
      );
    }
    const replies = await Promise.all(sent);
    await failover;
    // Writes are accepted again after the switch: the service is back. (With REDIS_WAIT_REPLICAS
    // that waits for the old master to sync as the new one's replica, which may outlast the run.)
    const again = await waitFor(async () => {
      const r = await post("/products", { name: `${marker}-after`, category: "failover", default_price: 2 });
      return r.status === 202 ? r : undefined;
    }, 20_000, "writes to be accepted again");
    const after = await completed(again);
    expect(after.result.productId).toEqual(expect.any(Number));

    const accepted = replies.filter((r) => r.status === 202);
    const refused = replies.filter((r) => r.status === 503);
    expect(replies.filter((r) => r.status !== 202 && r.status !== 503).map((r) => `${r.i}: ${r.status} ${r.text}`)).toEqual([]);
    expect(accepted.length).toBeGreaterThan(0);

    // Every accepted write is applied exactly once; no write (accepted or refused) twice.
    const count = async () =>
      rows<{ name: string; n: number }>(sql`select name, count(*)::int as n from products where name like ${`${marker}-fo-%`} group by name`);
    await waitFor(async () => {
      const applied = new Set((await count()).map((r) => r.name));
      return accepted.every((r) => applied.has(`${marker}-fo-${r.i}`));
    }, 40_000, "every accepted write to be applied").catch(async (err) => {
      // What became of the missing ones: still queued or retrying, failed, or unknown (lost).
      const applied = new Set((await count()).map((r) => r.name));
      const missing = accepted.filter((r) => !applied.has(`${marker}-fo-${r.i}`));
      const states = await Promise.all(missing.slice(0, 20).map(async (r) => `${r.i} ${(await request(api.url, "GET", `/jobs/${r.jobId}`)).text}`));
      console.log(`failover: ${missing.length} accepted writes not applied:\n${states.join("\n")}\n${worker.output().slice(-3_000)}`);
      throw err;
    });
    const applied = await count();
    expect(applied.filter((r) => r.n !== 1)).toEqual([]);
    const appliedNames = new Set(applied.map((r) => r.name));
    for (const r of accepted) expect(appliedNames.has(`${marker}-fo-${r.i}`), `write ${r.i}`).toBe(true);
    // ...and each accepted job reports completed through the status route.
    const states = new Map<string, number>();
    for (let k = 0; k < accepted.length; k += 25) {
      const batch = await Promise.all(accepted.slice(k, k + 25).map((r) => request(api.url, "GET", `/jobs/${r.jobId}`)));
      for (const s of batch) states.set(s.body?.state, (states.get(s.body?.state) ?? 0) + 1);
    }
    expect([...states]).toEqual([["completed", accepted.length]]);

    // The slot moved: the former replica now serves the queues.
    const owner = await cluster.ownerOf(prefix);
    expect(owner.master.id).toBe(replica.id);
    expect(owner.master.id).not.toBe(master.id);

    const firstRefused = refused.length ? Math.min(...refused.map((r) => r.at)) : undefined;
    const lastRefused = refused.length ? Math.max(...refused.map((r) => r.at)) : undefined;
    const recovered = lastRefused === undefined ? undefined : accepted.find((r) => r.at > lastRefused)?.at;
    console.log(
      JSON.stringify({
        failover: {
          sent: replies.length,
          accepted: accepted.length,
          refused: refused.length,
          appliedOfAccepted: accepted.length,
          appliedOfRefused: refused.filter((r) => appliedNames.has(`${marker}-fo-${r.i}`)).length,
          failoverMs: Math.round(failoverDone - failoverStarted),
          refusedWindowMs: firstRefused === undefined ? 0 : Math.round(lastRefused! - firstRefused),
          recoverMs: recovered === undefined || firstRefused === undefined ? 0 : Math.round(recovered - firstRefused),
          runMs: Math.round(performance.now() - t0),
        },
      }),
    );
  }, 90_000);

  it("a hung master is failed over by the cluster on its own: writes meanwhile wait or get 503, every 202 is applied once", async () => {
    const { slot, master, replica } = await cluster.ownerOf(prefix);
    // Short enough for the replica to take over within seconds; set back afterwards.
    await cluster.setNodeTimeout(2_000);
    const TOTAL = 400;
    const EVERY_MS = 20;
    const FREEZE_AT = 100;
    type Sent = { i: number; at: number; status: number; jobId?: string; text: string; ms: number };
    const sent: Promise<Sent>[] = [];
    let frozenAt = 0;
    let promotedAt = 0;
    let takeover: Promise<void> | undefined;
    const t0 = performance.now();
    try {
      for (let i = 0; i < TOTAL; i++) {
        const wait = t0 + i * EVERY_MS - performance.now();
        if (wait > 0) await sleep(wait);
        if (i === FREEZE_AT) {
          cluster.pause(master.port);
          frozenAt = performance.now();
          // The replica takes over once the others have not heard from the master for the
          // node timeout; then the old master comes back, and finds itself a replica.
          takeover = cluster.waitUntilOwner(replica, slot).then(() => {
            promotedAt = performance.now();
            cluster.resume(master.port);
          });
        }
        const at = performance.now();
        sent.push(
          post("/products", { name: `${marker}-hung-${i}`, category: "hung", default_price: 1 }).then(
            (r) => ({ i, at, status: r.status, jobId: r.body?.jobId, text: r.text, ms: r.ms }),
            (err: Error) => ({ i, at, status: 0, text: err.message, ms: 0 }),
          ),
        );
      }
      await takeover;
    } finally {
      cluster.resume(master.port);
      await cluster.setNodeTimeout(15_000).catch(() => {});
    }
    const replies = await Promise.all(sent);
    // Writes after the switch are accepted and applied. A 503 for want of a replica may
    // still be applied: the client retries under one Idempotency-Key, as the 503 says.
    const after = await waitFor(async () => {
      const r = await request(api.url, "POST", "/products", {
        json: { name: `${marker}-hung-after`, category: "hung", default_price: 2 },
        headers: { "idempotency-key": `${marker}-hung-after` },
      });
      return r.status === 202 ? r : undefined;
    }, 20_000, "writes to be accepted again");
    await completed(after);

    const accepted = replies.filter((r) => r.status === 202);
    const refused = replies.filter((r) => r.status === 503);
    expect(replies.filter((r) => r.status !== 202 && r.status !== 503).map((r) => `${r.i}: ${r.status} ${r.text}`)).toEqual([]);

    const count = async () =>
      rows<{ name: string; n: number }>(sql`select name, count(*)::int as n from products where name like ${`${marker}-hung-%`} group by name`);
    await waitFor(async () => {
      const applied = new Set((await count()).map((r) => r.name));
      return accepted.every((r) => applied.has(`${marker}-hung-${r.i}`));
    }, 40_000, "every accepted write to be applied");
    const applied = await count();
    const doubled = applied.filter((r) => r.n !== 1).map((r) => {
      const reply = replies.find((x) => r.name === `${marker}-hung-${x.i}`);
      return { ...r, reply: reply ? { status: reply.status, jobId: reply.jobId, atMs: Math.round(reply.at - frozenAt) } : "the keyed write after" };
    });
    expect(doubled).toEqual([]);
    const appliedNames = new Set(applied.map((r) => r.name));
    const lastRefused = refused.length ? Math.max(...refused.map((r) => r.at)) : 0;
    const recovered = accepted.find((r) => r.at > lastRefused)?.at;
    console.log(
      JSON.stringify({
        hungMaster: {
          sent: replies.length,
          accepted: accepted.length,
          refused: refused.length,
          appliedOfAccepted: accepted.filter((r) => appliedNames.has(`${marker}-hung-${r.i}`)).length,
          appliedOfRefused: refused.filter((r) => appliedNames.has(`${marker}-hung-${r.i}`)).length,
          promotedAfterMs: Math.round(promotedAt - frozenAt),
          acceptingAgainAfterMs: refused.length === 0 ? 0 : recovered === undefined ? "after the run" : Math.round(recovered - frozenAt),
          slowestReplyMs: Math.round(Math.max(...replies.map((r) => r.ms))),
          runMs: Math.round(performance.now() - t0),
        },
      }),
    );
  }, 90_000);

  it("the cache still serves after the failover", async () => {
    const job = await completed(await post("/products", { name: `${marker}-late`, category: "c", default_price: 3 }));
    const id = job.result.productId as number;
    const miss = await request(api.url, "GET", `/products/${id}`);
    expect(miss.status).toBe(200);
    await waitFor(async () => (await request(api.url, "GET", `/products/${id}`)).headers.get("x-cache") === "HIT", 5_000, "a HIT after the failover");
  });

  it("the queue connection is a Cluster", () => {
    // The producer's connection (deps wire one Redis-or-Cluster into everything).
    const redis = (api.runtime.deps.producer as unknown as { redis: unknown }).redis;
    expect(redis).toBeInstanceOf(Cluster);
  });
});
