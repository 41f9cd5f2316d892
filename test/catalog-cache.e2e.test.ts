import { catalogKeys } from "@ingest/catalog";
import { createCacheConnection } from "@ingest/redis";
import { sql } from "drizzle-orm";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedCatalog } from "./support/catalog-fixtures.js";
import { cachePrefixFor, request, startApi, testEnv, waitFor, type Api } from "./support/harness.js";
import { createScratchDb, type ScratchDb } from "./support/scratch-db.js";

// Stale-while-revalidate and single-flight, seen from outside (X-Cache) and counted
// inside (statements the API sent to PostgreSQL).
const { prefix, redisUrl } = testEnv("catalog-cache");
let scratch: ScratchDb;
const apis: Api[] = [];

beforeAll(async () => {
  scratch = await createScratchDb("catalog_cache");
  await seedCatalog(scratch.db);
});
afterAll(async () => {
  await Promise.all(apis.map((a) => a.close()));
  await scratch?.drop();
});

async function api(overrides: Record<string, string> = {}, queuePrefix = prefix): Promise<Api> {
  const started = await startApi(queuePrefix, { DATABASE_URL: scratch.url, ...overrides });
  apis.push(started);
  return started;
}
const get = (a: Api, path: string) => request(a.url, "GET", path);
const dbQueries = (a: Api) => a.runtime.deps.catalog.stats().dbQueries!;
const rename = (id: number, name: string) => scratch.db.execute(sql`update products set name = ${name} where id = ${id}`);

describe("stale-while-revalidate", () => {
  it("a read is a MISS, then a HIT while fresh, then STALE at once past the TTL while one refresh runs, then a HIT of the new value", async () => {
    const a = await api({ CACHE_TTL_S: "1", CACHE_STALE_S: "60" }, `${prefix.slice(0, -1)}-swr}`);
    const before = dbQueries(a);
    const miss = await get(a, "/products/4");
    expect(miss.headers.get("x-cache")).toBe("MISS");
    expect(miss.body.name).toBe("Product 4");
    const hit = await get(a, "/products/4");
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(hit.headers.get("etag")).toBe(miss.headers.get("etag"));
    expect(dbQueries(a) - before).toBe(1);

    // Changed behind the cache's back (no invalidation): only a refresh can see it.
    await rename(4, "Product 4 renamed");
    const stale = await waitFor(async () => {
      const r = await get(a, "/products/4");
      return r.headers.get("x-cache") === "STALE" ? r : undefined;
    }, 5_000, "the entry to turn stale");
    expect(stale.body.name).toBe("Product 4");
    expect(stale.ms).toBeLessThan(200);

    const refreshed = await waitFor(async () => {
      const r = await get(a, "/products/4");
      return r.headers.get("x-cache") === "HIT" && r.body.name === "Product 4 renamed" ? r : undefined;
    }, 5_000, "the refreshed value");
    expect(refreshed.headers.get("etag")).not.toBe(miss.headers.get("etag"));
    expect(a.runtime.deps.catalog.stats().refreshes).toBe(1);
    // The MISS and the one refresh, however many reads saw the stale value.
    expect(dbQueries(a) - before).toBe(2);
  });

  it("past the stale window a read is a MISS again", async () => {
    const a = await api({ CACHE_TTL_S: "1", CACHE_STALE_S: "1" }, `${prefix.slice(0, -1)}-expiry}`);
    expect((await get(a, "/products/5")).headers.get("x-cache")).toBe("MISS");
    expect((await get(a, "/products/5")).headers.get("x-cache")).toBe("HIT");
    // Any read in between would refresh the entry, so this waits without asking.
    await sleep(2_100);
    const r = await get(a, "/products/5");
    expect(r.headers.get("x-cache")).toBe("MISS");
    expect(r.body.name).toBe("Product 5");
  });
});

describe("single flight", () => {
  it("500 concurrent cold reads of one product make one database query", async () => {
    const a = await api({}, `${prefix.slice(0, -1)}-flight}`);
    const before = dbQueries(a);
    // Hold the first query in PostgreSQL until every read has arrived and joined it.
    const blocker = await scratch.pool.connect();
    let replies;
    try {
      await blocker.query("begin");
      await blocker.query("lock table products in access exclusive mode");
      const pending = Promise.all(Array.from({ length: 500 }, () => get(a, "/products/6/styles")));
      // All 500 normally arrive in about a second; a starved machine gets less time
      // than the database breaker's timeout, and fewer reads join (the rest then hit).
      await waitFor(() => a.runtime.deps.catalog.stats().joined! >= 499, 3_000, "500 reads in flight").catch(() => undefined);
      await blocker.query("commit");
      replies = await pending;
    } finally {
      blocker.release();
    }
    expect(replies.every((r) => r.status === 200)).toBe(true);
    const joined = a.runtime.deps.catalog.stats().joined!;
    expect(joined).toBeGreaterThan(100);
    expect(replies.filter((r) => r.headers.get("x-cache") === "MISS")).toHaveLength(joined + 1);
    expect(new Set(replies.map((r) => r.headers.get("etag"))).size).toBe(1);
    expect(replies[0]!.body.results).toHaveLength(0);
    expect(dbQueries(a) - before).toBe(1);
  });

  it("500 concurrent cold reads of an unknown product make one query and all answer 404", async () => {
    const a = await api({}, `${prefix.slice(0, -1)}-flight404}`);
    const before = dbQueries(a);
    const replies = await Promise.all(Array.from({ length: 500 }, () => get(a, "/products/4040404")));
    expect(replies.every((r) => r.status === 404)).toBe(true);
    expect(dbQueries(a) - before).toBe(1);
  });

  it("two API processes reading one cold key at once make about one query between them (Redis lock)", async () => {
    const shared = `${prefix.slice(0, -1)}-flight2}`;
    const [a, b] = [await api({}, shared), await api({}, shared)];
    const before = dbQueries(a) + dbQueries(b);
    const replies = await Promise.all(
      Array.from({ length: 500 }, (_, i) => get(i % 2 ? a : b, "/products/7/related")),
    );
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(new Set(replies.map((r) => r.text)).size).toBe(1);
    expect(dbQueries(a) + dbQueries(b) - before).toBeLessThanOrEqual(2);
  });

  it("list pages are cached per page and count", async () => {
    const a = await api({}, `${prefix.slice(0, -1)}-lists}`);
    const before = dbQueries(a);
    await Promise.all(Array.from({ length: 50 }, () => get(a, "/products?page=2&count=3")));
    const r = await get(a, "/products?page=2&count=3");
    expect(r.headers.get("x-cache")).toBe("HIT");
    expect(r.body.map((p: { id: number }) => p.id)).toEqual([4, 5, 6]);
    expect((await get(a, "/products?page=2&count=4")).headers.get("x-cache")).toBe("MISS");
    expect(dbQueries(a) - before).toBe(2);
  });
});

describe("an upgrade that changes what a read answers", () => {
  it("entries cached in an earlier shape are never served; entries of the current shape are", async () => {
    const queuePrefix = `${prefix.slice(0, -1)}-shape}`;
    const cachePrefix = cachePrefixFor(queuePrefix);
    const redis = createCacheConnection(redisUrl, { connectionName: "test-earlier-release" });
    try {
      await waitFor(() => redis.status === "ready", 5_000, "cache connection");
      // What the release before wrote for product 1's styles: its version keys, and an
      // entry (status, time, ETag, then the body) under its key layout, where a style
      // without photos or skus had [] and {}.
      const keys = catalogKeys(cachePrefix);
      await redis.set(keys.globalVersion, "g1", "EX", 600);
      await redis.set(keys.productVersion(1), "p1", "EX", 600);
      const old = `{"product_id":"1","results":[{"style_id":3,"name":"Ocean Blue","photos":[],"skus":{}}]}`;
      await redis.set(`${cachePrefix}:e:g1.p1:styles:1`, `200 ${Date.now()} "old-shape"\n${old}`, "EX", 600);
      // A current entry planted the same way is served: the test plants where reads look.
      const current = `{"product_id":"1","results":[]}`;
      await redis.set(keys.entry({ kind: "related", id: 1 }, "g1.p1"), `200 ${Date.now()} "planted"\n${current}`, "EX", 600);

      const a = await api({ CACHE_LOCAL_TTL_MS: "0" }, queuePrefix);
      const planted = await get(a, "/products/1/related");
      expect(planted.headers.get("x-cache")).toBe("HIT");
      expect(planted.headers.get("etag")).toBe('"planted"');

      const r = await get(a, "/products/1/styles");
      expect(r.headers.get("x-cache")).toBe("MISS");
      expect(r.headers.get("etag")).not.toBe('"old-shape"');
      const ocean = r.body.results.find((style: { style_id: number }) => style.style_id === 3);
      expect(ocean.photos).toEqual([{ thumbnail_url: null, url: null }]);
      expect(ocean.skus).toEqual({ null: { quantity: null, size: null } });
    } finally {
      await redis.quit();
    }
  });
});
