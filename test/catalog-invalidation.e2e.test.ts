import { randomUUID } from "node:crypto";
import { createCatalogInvalidator, type CatalogInvalidator } from "@ingest/catalog";
import { createCacheConnection } from "@ingest/redis";
import { sql } from "drizzle-orm";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedCatalog } from "./support/catalog-fixtures.js";
import {
  cachePrefixFor,
  request,
  spawnWorker,
  startApi,
  testEnv,
  waitFor,
  waitForJob,
  type Api,
  type WorkerProcess,
} from "./support/harness.js";
import { createScratchDb, type ScratchDb } from "./support/scratch-db.js";

// Read-after-write through the real write path: API -> queue -> worker process -> commit
// -> invalidation -> "completed". Two API processes share the cache Redis; each keeps
// in-process copies for a minute here, so only pub/sub can evict them in time.
const { prefix, redisUrl } = testEnv("catalog-invalidation");
let scratch: ScratchDb;
let a: Api;
let b: Api;
let worker: WorkerProcess;
let cacheRedis: Redis;
let invalidator: CatalogInvalidator;

const LONG_LOCAL_COPIES = { CACHE_LOCAL_TTL_MS: "60000", CACHE_TTL_S: "600" };

beforeAll(async () => {
  scratch = await createScratchDb("catalog_invalidation");
  await seedCatalog(scratch.db);
  // PUTs below use explicit ids; keep POSTs clear of them.
  await scratch.db.execute(sql`select setval(pg_get_serial_sequence('products', 'id'), 1000)`);
  [a, b, worker] = await Promise.all([
    startApi(prefix, { DATABASE_URL: scratch.url, ...LONG_LOCAL_COPIES }),
    startApi(prefix, { DATABASE_URL: scratch.url, ...LONG_LOCAL_COPIES }),
    spawnWorker(prefix, { DATABASE_URL: scratch.url }),
  ]);
  cacheRedis = createCacheConnection(redisUrl, { connectionName: "test-importer" });
  invalidator = createCatalogInvalidator({ redis: cacheRedis, prefix: cachePrefixFor(prefix) });
  await waitFor(() => cacheRedis.status === "ready", 5_000, "cache connection");
});
afterAll(async () => {
  await worker?.stop();
  await Promise.all([a?.close(), b?.close()]);
  await cacheRedis?.quit();
  await scratch?.drop();
});

const get = (api: Api, path: string) => request(api.url, "GET", path);
const write = async (method: string, path: string, json?: unknown) => {
  const r = await request(a.url, method, path, json === undefined ? {} : { json });
  expect(r.status, r.text).toBe(202);
  const job = await waitForJob(a.url, r.body.jobId);
  expect(job.state, JSON.stringify(job)).toBe("completed");
  return job;
};
/** Reads until the value is served from a cache, so the next read would be a hit. */
const warm = async (api: Api, path: string) =>
  waitFor(async () => ((await get(api, path)).headers.get("x-cache") === "HIT" ? true : undefined), 5_000, `warm ${path}`);
const product = { name: "Trail Shoe", slogan: "Go", description: "Light", category: "Shoes", default_price: "89.00", features: [{ feature: "Sole", value: "Rubber" }] };

describe("read after a completed write", () => {
  it("PATCH: the first read after the job completed shows the change, on the product and on list pages", async () => {
    await write("PUT", "/products/100", product);
    await warm(a, "/products/100");
    await warm(a, "/products?page=3&count=5");
    const page = await get(a, "/products?page=3&count=5");
    expect(page.body.find((p: { id: number }) => p.id === 100)?.name).toBe("Trail Shoe");

    await write("PATCH", "/products/100", { name: "Trail Shoe II", default_price: 99.5 });
    const r = await get(a, "/products/100");
    expect(r.body).toMatchObject({ id: 100, name: "Trail Shoe II", default_price: "99.50", features: [{ feature: "Sole", value: "Rubber" }] });
    expect(r.headers.get("x-cache")).toBe("MISS");
    const after = await get(a, "/products?page=3&count=5");
    expect(after.body.find((p: { id: number }) => p.id === 100)?.name).toBe("Trail Shoe II");
  });

  it("PUT to an id that was read as unknown (a cached 404) is readable right after its job completed", async () => {
    expect((await get(a, "/products/200")).status).toBe(404);
    await warm(a, "/products/200");
    await write("PUT", "/products/200", { ...product, name: "Fresh" });
    expect((await get(a, "/products/200")).body.name).toBe("Fresh");
  });

  it("POST: the created product reads back as soon as its job completed", async () => {
    const job = await write("POST", "/products", { ...product, name: "Posted" });
    const r = await get(a, `/products/${job.result.productId}`);
    expect(r.status).toBe(200);
    expect(r.body.name).toBe("Posted");
  });

  it("DELETE: the product, its styles and related are 404 right after the job completed", async () => {
    for (const path of ["/products/3", "/products/3/styles", "/products/3/related"]) await warm(a, path);
    await write("DELETE", "/products/3");
    for (const path of ["/products/3", "/products/3/styles", "/products/3/related"]) {
      expect((await get(a, path)).status, path).toBe(404);
    }
  });

  it("a write the ledger reports completed while its job still runs: that answer comes after its invalidation", async () => {
    await write("PUT", "/products/310", product);
    await warm(a, "/products/310");
    // The worker has committed the edit (its ledger row) and not yet invalidated the
    // cache nor completed the job: the moment a client polling GET /jobs can see.
    const jobId = `prd-${randomUUID()}`;
    const queue = a.runtime.deps.queues.products;
    await queue.add("writes", { writes: [] }, { jobId, delay: 600_000 });
    try {
      await scratch.db.execute(sql`update products set name = 'Committed' where id = 310`);
      await scratch.db.execute(
        sql`insert into job_ledger (job_id, queue, name, status, result, accepted_at) values (${jobId}, 'products', 'product.patch', 'completed', ${JSON.stringify({ productId: 310 })}::jsonb, now())`,
      );
      expect((await request(a.url, "GET", `/jobs/${jobId}`)).body.state).toBe("completed");
      expect((await get(a, "/products/310")).body.name).toBe("Committed");
      expect((await get(b, "/products/310")).body.name).toBe("Committed");
    } finally {
      await (await queue.getJob(jobId))?.remove();
    }
  });

  it("two API processes: a write through one shows on the other right after completion (pub/sub evicts its copy)", async () => {
    await write("PUT", "/products/300", product);
    await warm(a, "/products/300");
    await warm(b, "/products/300");
    const localBefore = b.runtime.deps.catalog.stats().localHits!;
    expect((await get(b, "/products/300")).headers.get("x-cache")).toBe("HIT");
    expect(b.runtime.deps.catalog.stats().localHits).toBe(localBefore + 1);

    await write("PATCH", "/products/300", { name: "Seen everywhere" });
    expect((await get(b, "/products/300")).body.name).toBe("Seen everywhere");
    expect((await get(a, "/products/300")).body.name).toBe("Seen everywhere");
  });
});

describe("the invalidation API the importer calls", () => {
  it("products(ids) makes the next read of those products, on every API process, come from PostgreSQL", async () => {
    for (const api of [a, b]) {
      await warm(api, "/products/4");
      await warm(api, "/products/4/styles");
    }
    await scratch.db.execute(sql`update products set name = 'Imported 4' where id = 4`);
    await scratch.db.execute(sql`insert into styles (id, product_id, name, original_price) values (100, 4, 'New style', 10)`);
    expect((await get(b, "/products/4")).body.name).toBe("Product 4");

    await invalidator.products([4]);
    for (const api of [a, b]) {
      expect((await get(api, "/products/4")).body.name).toBe("Imported 4");
      expect((await get(api, "/products/4/styles")).body.results[0].name).toBe("New style");
    }
  });

  it("all() makes every cached read a miss", async () => {
    for (const path of ["/products/5", "/products/6/related", "/products?page=1&count=5"]) await warm(b, path);
    await scratch.db.execute(sql`update products set name = 'Bulk ' || id where id in (1, 5)`);
    await scratch.db.execute(sql`insert into related (id, product_id, related_product_id) values (100, 6, 42)`);
    await invalidator.all();
    expect((await get(b, "/products/5")).body.name).toBe("Bulk 5");
    expect((await get(b, "/products/6/related")).body).toEqual([42]);
    expect((await get(b, "/products?page=1&count=5")).body[0].name).toBe("Bulk 1");
  });
});
