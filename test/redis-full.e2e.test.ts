import { sql } from "drizzle-orm";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request, spawnWorker, startApi, testDb, testEnv, waitFor, type Api, type Reply, type WorkerProcess } from "./support/harness.js";
import { freePort, PrivateRedis } from "./support/private-redis.js";

// The queue Redis at its maxmemory (noeviction): writes are refused with 503 and
// Retry-After, never 500, nothing accepted is lost, and writes are taken again once
// memory frees. A filler key stands for everything else that holds the memory.
const { prefix } = testEnv("redis-full");
const { db, close: closeDb } = testDb();
let redis: PrivateRedis;
let admin: Redis;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  redis = new PrivateRedis(await freePort(), { maxmemory: "48mb", protectedConfigs: true });
  await redis.start();
  admin = new Redis(redis.url);
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  admin?.disconnect();
  await redis?.remove();
  await closeDb();
});

const used = async () => Number(/^used_memory:(\d+)/m.exec(await admin.info("memory"))?.[1]);
let fillers = 0;
/** Fills the server's memory up to `share` of its maxmemory, in pieces (a request's own buffer counts too). */
async function fillTo(share: number) {
  const target = 48 * 1024 * 1024 * share;
  for (let room = target - (await used()); room > 0; room = target - (await used())) {
    try {
      await admin.set(`filler:${fillers++}`, Buffer.alloc(Math.min(room, 256 * 1024), 120));
    } catch (err) {
      // The apps' own writes took the last of the room meanwhile: full is what was wanted.
      if (/^OOM/.test((err as Error).message)) return;
      throw err;
    }
  }
}
const unfill = async () => {
  for (let i = 0; i < fillers; i += 500) await admin.del(...Array.from({ length: Math.min(500, fillers - i) }, (_, k) => `filler:${i + k}`));
};

let n = 0;
const post = (api: Api): Promise<Reply> =>
  request(api.url, "POST", "/registrations", { json: { email: `full-${n}@example.com`, name: "Full" }, headers: { "idempotency-key": `full-${n++}` } });

/** Posts until refused; answers every reply. */
async function postUntilRefused(api: Api, max = 4_000): Promise<Reply[]> {
  const replies: Reply[] = [];
  for (let i = 0; i < max; i++) {
    const batch = await Promise.all(Array.from({ length: 20 }, () => post(api)));
    replies.push(...batch);
    if (batch.some((r) => r.status !== 202)) return replies;
  }
  return replies;
}

const applied = async (emails: string[]) =>
  Number((await db.execute<{ n: number }>(sql`select count(*)::int as n from registrations where email = any(string_to_array(${emails.join(",")}, ','))`)).rows[0]!.n);
const emailsOf = (replies: Reply[], sent: string[]) => replies.flatMap((r, k) => (r.status === 202 ? [sent[k]!] : []));

describe("the queue Redis full", () => {
  it("near its maxmemory writes get 503 with Retry-After; at it, too (never 500); once memory frees, writes are taken and everything accepted applies once", async () => {
    // The guard on: it refuses before Redis does, leaving the workers room to drain.
    const guarded = await startApi(prefix, { REDIS_URL: redis.url, QUEUE_MEMORY_HIGH_WATER_PCT: "80" });
    // The guard off: Redis itself refuses (OOM), as it would past any guard.
    const bare = await startApi(prefix, { REDIS_URL: redis.url, QUEUE_MEMORY_HIGH_WATER_PCT: "0" });
    const accepted: string[] = [];
    try {
      workers.push(await spawnWorker(prefix, { REDIS_URL: redis.url }));
      const first = n;
      const before = await Promise.all(Array.from({ length: 20 }, () => post(guarded)));
      expect(before.map((r) => r.status)).toEqual(before.map(() => 202));
      accepted.push(...before.map((_, k) => `full-${first + k}@example.com`));
      await fillTo(0.82);
      // The guard reads the memory once a second.
      await waitFor(async () => (await post(guarded)).status === 503, 5_000, "the guard to refuse");
      const start = n;
      const refusedByGuard = await postUntilRefused(guarded, 1);
      const guardSent = refusedByGuard.map((_, k) => `full-${start + k}@example.com`);
      for (const r of refusedByGuard) {
        expect(r.status).toBe(503);
        expect(r.headers.get("retry-after")).toBe("5");
        expect(r.headers.get("content-type")).toMatch(/^application\/problem\+json/);
        expect(r.body.detail).toMatch(/nearly full/);
      }
      accepted.push(...emailsOf(refusedByGuard, guardSent));
      // Refused writes leave room for the worker: what was accepted is applied meanwhile.
      await waitFor(async () => (await applied(accepted)) === accepted.length, 30_000, "the worker to drain under the guard");

      // Past the guard, to the hard limit: Redis answers OOM; the API answers 503, never 500.
      await fillTo(0.995);
      const from = n;
      const hard = await postUntilRefused(bare, 50);
      const hardSent = hard.map((_, k) => `full-${from + k}@example.com`);
      expect(hard.filter((r) => r.status !== 202 && r.status !== 503).map((r) => `${r.status} ${r.text}`)).toEqual([]);
      expect(hard.some((r) => r.status === 503)).toBe(true);
      for (const r of hard.filter((x) => x.status === 503)) expect(r.headers.get("retry-after")).not.toBeNull();
      accepted.push(...emailsOf(hard, hardSent));
      // Reads go on meanwhile.
      expect((await request(bare.url, "GET", "/healthz")).status).toBe(200);

      // The worker meanwhile cannot run BullMQ's scripts; memory frees (here: the filler goes).
      await unfill();
      await waitFor(async () => (await post(guarded)).status === 202, 10_000, "writes taken again");
      const from2 = n;
      const late = await Promise.all(Array.from({ length: 10 }, () => post(guarded)));
      expect(late.map((r) => r.status)).toEqual(late.map(() => 202));
      accepted.push(...late.map((_, k) => `full-${from2 + k}@example.com`));

      // Everything accepted applies, once.
      await waitFor(async () => (await applied(accepted)) === accepted.length, 30_000, "every accepted write applied");
      const doubled = await db.execute(sql`select email from registrations where email like 'full-%' group by email having count(*) > 1`);
      expect(doubled.rows).toEqual([]);
    } finally {
      // A failure above must not leave the next test a full Redis.
      await unfill().catch(() => {});
      await Promise.all([guarded.close(), bare.close()]);
    }
  });

  it("a Redis that cannot persist (MISCONF, as with a full disk): writes get 503, never 500, and are taken again once it can", async () => {
    const api = await startApi(prefix, { REDIS_URL: redis.url });
    const dir = String(((await admin.config("GET", "dir")) as string[])[1]);
    try {
      // A snapshot that cannot be written makes Redis refuse writes until one succeeds.
      await admin.config("SET", "save", "3600 1");
      await admin.config("SET", "stop-writes-on-bgsave-error", "yes");
      await admin.config("SET", "dir", "/proc");
      await admin.bgsave();
      await waitFor(async () => /rdb_last_bgsave_status:err/.test(await admin.info("persistence")), 10_000, "the snapshot to fail");
      const refused = await Promise.all(Array.from({ length: 10 }, () => post(api)));
      expect(refused.map((r) => r.status)).toEqual(refused.map(() => 503));
      for (const r of refused) {
        expect(r.headers.get("retry-after")).not.toBeNull();
        expect(JSON.stringify(r.body)).not.toMatch(/MISCONF/);
      }
      expect((await request(api.url, "GET", "/healthz")).status).toBe(200);

      await admin.config("SET", "dir", dir);
      await admin.bgsave();
      await waitFor(async () => /rdb_last_bgsave_status:ok/.test(await admin.info("persistence")), 10_000, "a snapshot to succeed");
      const taken = await post(api);
      expect(taken.status).toBe(202);
    } finally {
      await admin.config("SET", "dir", dir).catch(() => {});
      await admin.config("SET", "save", "").catch(() => {});
      await api.close();
    }
  });
});
