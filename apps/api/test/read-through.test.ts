import { createCatalogInvalidator, type Resource } from "@ingest/catalog";
import { createCacheConnection } from "@ingest/redis";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cachePrefixFor, testEnv, waitFor } from "../../../test/support/harness.js";
import { createLocalStore } from "../src/cache/local-store.js";
import { createReadThrough } from "../src/cache/read-through.js";
import { createRedisStore } from "../src/cache/redis-store.js";

// The races the version-in-key and the superseded flag exist for, against the real
// Redis, with PostgreSQL replaced by a loader the test releases by hand.
const { prefix: queuePrefix, redisUrl } = testEnv("read-through");
const prefix = cachePrefixFor(queuePrefix);
let redis: Redis;

beforeAll(async () => {
  // These tests are about races between reads and invalidations, not slow Redis: a
  // command timeout of production's 250 ms failed one under a loaded test run.
  redis = createCacheConnection(redisUrl, { connectionName: "test-read-through", commandTimeoutMs: 5_000 });
  await waitFor(() => redis.status === "ready", 5_000, "cache connection");
});
afterAll(() => redis.quit());

type Deferred = { resolve: (json: string | undefined) => void; promise: Promise<string | undefined> };
const deferred = (): Deferred => {
  let resolve!: Deferred["resolve"];
  const promise = new Promise<string | undefined>((r) => (resolve = r));
  return { resolve, promise };
};

function setup(name: string, opts: { localTtlMs?: number } = {}) {
  const p = `${prefix}:${name}`;
  const loads: Deferred[] = [];
  const store = createRedisStore(redis, { prefix: p, keepMs: 60_000, lockMs: 3_000 });
  const local = createLocalStore({ ttlMs: opts.localTtlMs ?? 60_000, maxEntries: 100, maxBytes: 1 << 20 });
  local.setLive(true);
  const cache = createReadThrough({
    store,
    local,
    ttlMs: 60_000,
    staleMs: 60_000,
    log: { debug: () => undefined },
    load: () => {
      const d = deferred();
      loads.push(d);
      return d.promise;
    },
  });
  const invalidator = createCatalogInvalidator({ redis, prefix: p });
  return { cache, local, loads, invalidator, close: () => store.close() };
}

const product: Resource = { kind: "product", id: 7 };
const body = (served: { entry: { body: Buffer } }) => served.entry.body.toString();

describe("a read racing an invalidation", () => {
  it("a load that read the old data before an invalidation never becomes what later reads get from Redis", async () => {
    const t = setup("redis-race", { localTtlMs: 0 });
    const first = t.cache.read(product);
    await waitFor(() => t.loads.length === 1, 2_000, "first load");
    // The worker commits and invalidates while the old read is still in flight.
    await t.invalidator.products([7]);
    t.loads[0]!.resolve('{"name":"old"}');
    expect(body(await first)).toBe('{"name":"old"}');

    const second = t.cache.read(product);
    await waitFor(() => t.loads.length === 2, 2_000, "a second load");
    t.loads[1]!.resolve('{"name":"new"}');
    expect(await second).toMatchObject({ how: "MISS" });
    expect(body(await second)).toBe('{"name":"new"}');
    const third = await t.cache.read(product);
    expect(third.how).toBe("HIT");
    expect(body(third)).toBe('{"name":"new"}');
    t.close();
  });

  it("a load superseded by an eviction message neither fills the in-process cache nor is joined by later reads", async () => {
    const t = setup("local-race");
    const first = t.cache.read(product);
    await waitFor(() => t.loads.length === 1, 2_000, "first load");
    await t.invalidator.products([7]);
    t.cache.evict({ ids: [7] });
    // A read after the eviction starts its own load instead of waiting for the old one.
    const second = t.cache.read(product);
    await waitFor(() => t.loads.length === 2, 2_000, "a second load");
    t.loads[0]!.resolve('{"name":"old"}');
    await first;
    expect(t.local.get("product:7")).toBeUndefined();
    t.loads[1]!.resolve('{"name":"new"}');
    expect(body(await second)).toBe('{"name":"new"}');
    expect(body(await t.cache.read(product))).toBe('{"name":"new"}');
    expect(t.cache.stats.localHits).toBe(1);
    t.close();
  });

  it("an eviction of one product leaves other products' copies and drops every list page", async () => {
    const t = setup("evict-scope");
    const reads = [product, { kind: "product", id: 8 }, { kind: "list", page: 1, count: 5 }] as Resource[];
    const served = reads.map((r) => t.cache.read(r));
    await waitFor(() => t.loads.length === 3, 2_000, "three loads");
    t.loads.forEach((d, i) => d.resolve(`[${i}]`));
    await Promise.all(served);
    t.cache.evict({ ids: [7] });
    expect(t.local.get("product:7")).toBeUndefined();
    expect(t.local.get("product:8")).toBeDefined();
    expect(t.local.get("list:1:5")).toBeUndefined();
    t.close();
  });
});
