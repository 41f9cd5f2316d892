import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedCatalog } from "./support/catalog-fixtures.js";
import { request, spawnWorker, startApi, testEnv, waitFor, waitForJob, type Api, type Reply } from "./support/harness.js";
import { freePort, PrivateRedis } from "./support/private-redis.js";
import { createScratchDb, type ScratchDb } from "./support/scratch-db.js";

// Reads keep answering when one of their stores is gone, and say so.
const { prefix } = testEnv("catalog-degraded");
const apis: Api[] = [];
const redises: PrivateRedis[] = [];
const dbs: ScratchDb[] = [];

afterAll(async () => {
  await Promise.all(apis.map((a) => a.close()));
  for (const r of redises) {
    r.resume();
    await r.remove();
  }
  await Promise.all(dbs.map((d) => d.drop()));
});

async function catalogDb(name: string): Promise<ScratchDb> {
  const db = await createScratchDb(name);
  dbs.push(db);
  await seedCatalog(db.db);
  return db;
}
async function cacheRedis(): Promise<PrivateRedis> {
  const r = new PrivateRedis(await freePort());
  redises.push(r);
  await r.start();
  return r;
}
async function api(db: ScratchDb, cache: PrivateRedis, overrides: Record<string, string> = {}): Promise<Api> {
  const a = await startApi(prefix, { DATABASE_URL: db.url, CACHE_REDIS_URL: cache.url, ...overrides });
  apis.push(a);
  return a;
}
const get = (a: Api, path: string) => request(a.url, "GET", path);
const served = (r: Reply) => r.headers.get("x-cache");

function expectUnavailable(r: Reply) {
  expect(r.status, r.text).toBe(503);
  expect(r.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(Number(r.headers.get("retry-after"))).toBeGreaterThan(0);
  expect(r.body).toMatchObject({ status: 503, title: expect.any(String), detail: expect.any(String) });
}

describe("cache Redis down", () => {
  let db: ScratchDb;
  beforeAll(async () => {
    db = await catalogDb("degraded_cache_down");
  });

  it("a dead cache Redis: reads answer from PostgreSQL as BYPASS, quickly, and use the cache again once it is back", async () => {
    const cache = await cacheRedis();
    const a = await api(db, cache);
    expect(served(await get(a, "/products/1"))).toBe("MISS");
    await cache.kill();

    await waitFor(async () => served(await get(a, "/products/1")) === "BYPASS", 5_000, "first BYPASS");
    const started = performance.now();
    const replies = [];
    for (let i = 0; i < 20; i++) replies.push(await get(a, i % 2 ? "/products/1" : "/products/2/styles"));
    expect(performance.now() - started).toBeLessThan(1_000);
    for (const r of replies) {
      expect(r.status).toBe(200);
      expect(served(r)).toBe("BYPASS");
    }
    expect(replies[1]!.body.name).toBe("Camo Onesie");

    await cache.start();
    await waitFor(async () => served(await get(a, "/products/1")) === "HIT", 15_000, "the cache to be used again");
    // Subscribed again, so in-process copies are trusted again.
    const localHits = a.runtime.deps.catalog.stats().localHits!;
    await get(a, "/products/1");
    expect(a.runtime.deps.catalog.stats().localHits).toBe(localHits + 1);
  });

  it("a hung cache Redis (accepts, never answers): after a few slow reads the breaker opens and reads do not wait", async () => {
    const cache = await cacheRedis();
    const a = await api(db, cache, { CACHE_LOCAL_TTL_MS: "0" });
    expect(served(await get(a, "/products/1"))).toBe("MISS");
    cache.pause();
    try {
      const replies: Reply[] = [];
      for (let i = 0; i < 30; i++) replies.push(await get(a, "/products/1"));
      expect(replies.every((r) => r.status === 200 && served(r) === "BYPASS")).toBe(true);
      // Each of the first few waited out the command timeout (250 ms); then none waits.
      expect(replies.filter((r) => r.ms > 200).length).toBeLessThanOrEqual(10);
      expect(Math.max(...replies.slice(-10).map((r) => r.ms))).toBeLessThan(100);
    } finally {
      cache.resume();
    }
  });
});

describe("cache Redis down during a write", () => {
  it("the job completes without waiting on the cache, and its invalidation lands once the cache answers again", async () => {
    const db = await catalogDb("degraded_write");
    const cache = await cacheRedis();
    const a = await api(db, cache, { CACHE_LOCAL_TTL_MS: "0", CACHE_TTL_S: "600" });
    const worker = await spawnWorker(prefix, { DATABASE_URL: db.url, CACHE_REDIS_URL: cache.url });
    try {
      expect(served(await get(a, "/products/1"))).toBe("MISS");
      expect(served(await get(a, "/products/1"))).toBe("HIT");
      // Hung, not dead: the entry stays in it, and so would the old value.
      cache.pause();
      const accepted = await request(a.url, "PATCH", "/products/1", { json: { name: "Patched while the cache hung" } });
      expect(accepted.status).toBe(202);
      const started = performance.now();
      const job = await waitForJob(a.url, accepted.body.jobId);
      expect(job.state).toBe("completed");
      expect(performance.now() - started).toBeLessThan(3_000);
      // Meanwhile reads bypass the hung cache and see the write.
      const during = await get(a, "/products/1");
      expect(served(during)).toBe("BYPASS");
      expect(during.body.name).toBe("Patched while the cache hung");

      cache.resume();
      await waitFor(async () => {
        const r = await get(a, "/products/1");
        return served(r) !== "BYPASS" && r.body.name === "Patched while the cache hung";
      }, 10_000, "the cached read to show the write");
    } finally {
      cache.resume();
      await worker.stop();
    }
  });
});

describe("PostgreSQL down", () => {
  it("cached entries are served as STALE, even past the stale window; what was never cached is 503; with the cache gone too, 503", async () => {
    const db = await catalogDb("degraded_pg_down");
    const cache = await cacheRedis();
    const a = await api(db, cache, { CACHE_TTL_S: "1", CACHE_STALE_S: "1" });
    // Warm the entries. On a busy machine a cache command can outlast its timeout, and that
    // read bypasses the cache: read again until the entry is in it.
    const cached = (path: string) =>
      waitFor(async () => {
        const r = await get(a, path);
        return served(r) === "MISS" || served(r) === "HIT" ? r : undefined;
      }, 10_000, `${path} cached`);
    const warm = await cached("/products/1");
    await cached("/products/1/styles");

    await db.drop();
    const stale = await waitFor(async () => {
      const r = await get(a, "/products/1");
      return served(r) === "STALE" ? r : undefined;
    }, 5_000, "a STALE answer");
    expect(stale.status).toBe(200);
    expect(stale.text).toBe(warm.text);
    expect(stale.headers.get("etag")).toBe(warm.headers.get("etag"));

    // Past TTL + stale window the entry would be a miss; with PostgreSQL down it still serves.
    await sleep(2_100);
    const late = await get(a, "/products/1/styles");
    expect(late.status).toBe(200);
    expect(served(late)).toBe("STALE");
    expect(late.body.product_id).toBe("1");

    const never = await get(a, "/products/2");
    expectUnavailable(never);
    expect(never.ms).toBeLessThan(1_000);

    await cache.kill();
    await waitFor(async () => (await get(a, "/products/1")).status === 503, 5_000, "503 with both down");
    expectUnavailable(await get(a, "/products/1"));
  });
});
