import { carrierIdOf } from "@ingest/jobs";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  request,
  spawnWorker,
  startApi,
  testDb,
  testEnv,
  waitFor,
  waitForJob,
  type Api,
  type WorkerProcess,
} from "./support/harness.js";

const { prefix } = testEnv("e2e");
let api: Api;
let workers: WorkerProcess[];
const { db, close: closeDb } = testDb();

beforeAll(async () => {
  api = await startApi(prefix);
  // Two worker processes, as the smallest fleet.
  workers = await Promise.all([spawnWorker(prefix), spawnWorker(prefix)]);
});
afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await api.close();
  await closeDb();
});

const post = (path: string, json: unknown, headers: Record<string, string> = {}) =>
  request(api.url, "POST", path, { json, headers });

async function accepted(r: Awaited<ReturnType<typeof post>>) {
  expect(r.status, r.text).toBe(202);
  return waitForJob(api.url, r.body.jobId);
}

const rows = async <T>(query: ReturnType<typeof sql>) => (await db.execute(query)).rows as T[];

describe("registrations end to end", () => {
  it("a registration is stored and its job completes with the registration id", async () => {
    const job = await accepted(await post("/registrations", { email: "Ada@Example.com", name: "Ada", plan: "pro", marketingOptIn: true }));
    expect(job).toMatchObject({ state: "completed", type: "registration.create", attempts: 1 });
    expect(job.result).toEqual({ registrationId: expect.any(Number), outcome: "created" });
    expect(job.acceptedAt).toMatch(/Z$/);
    expect(job.finishedAt).toMatch(/Z$/);
    const [row] = await rows<any>(sql`select * from registrations where id = ${job.result.registrationId}`);
    expect(row).toMatchObject({ email: "Ada@Example.com", name: "Ada", plan: "pro", marketing_opt_in: true });
  });

  it("the same email in other case is a duplicate with the first id", async () => {
    const first = await accepted(await post("/registrations", { email: "bob@example.com", name: "Bob" }));
    const again = await accepted(await post("/registrations", { email: "BOB@example.COM", name: "Robert" }));
    expect(again.result).toEqual({ registrationId: first.result.registrationId, outcome: "duplicate" });
    const found = await rows(sql`select id from registrations where lower(email) = 'bob@example.com'`);
    expect(found).toHaveLength(1);
  });
});

describe("products end to end", () => {
  const product = {
    name: "Camo Onesie",
    slogan: "Blend in",
    description: "The So Fatigues will wake you up",
    category: "Jackets",
    default_price: 140,
    features: [
      { feature: "Fabric", value: "Canvas" },
      { feature: "Buttons", value: null },
    ],
  };

  it("POST creates a product with its features", async () => {
    const job = await accepted(await post("/products", product));
    const id = job.result.productId;
    expect(job.result).toEqual({ productId: expect.any(Number) });
    const [row] = await rows<any>(sql`select * from products where id = ${id}`);
    expect(row).toMatchObject({ name: "Camo Onesie", slogan: "Blend in", category: "Jackets", default_price: "140.00" });
    const feats = await rows<any>(sql`select feature, value from features where product_id = ${id} order by id`);
    expect(feats).toEqual([
      { feature: "Fabric", value: "Canvas" },
      { feature: "Buttons", value: null },
    ]);
  });

  it("PUT creates a product at a free id, then replaces it whole", async () => {
    const id = 500_001;
    const created = await accepted(await request(api.url, "PUT", `/products/${id}`, { json: product }));
    expect(created).toMatchObject({ state: "completed", result: { productId: id } });
    const replaced = await accepted(
      await request(api.url, "PUT", `/products/${id}`, { json: { name: "Plain", category: "Pants", default_price: "9.5" } }),
    );
    expect(replaced.result).toEqual({ productId: id });
    const [row] = await rows<any>(sql`select * from products where id = ${id}`);
    expect(row).toMatchObject({ name: "Plain", slogan: null, description: null, category: "Pants", default_price: "9.50" });
    expect(await rows(sql`select 1 from features where product_id = ${id}`)).toHaveLength(0);
    // The next POST draws a fresh id of its own; it never lands on the PUT's.
    const next = await accepted(await post("/products", product));
    expect(next.result.productId).not.toBe(id);
  });

  it("PATCH changes only the fields it names", async () => {
    const { result } = await accepted(await post("/products", product));
    const job = await accepted(await request(api.url, "PATCH", `/products/${result.productId}`, { json: { default_price: "99.99" } }));
    expect(job.result).toEqual({ productId: result.productId });
    const [row] = await rows<any>(sql`select * from products where id = ${result.productId}`);
    expect(row).toMatchObject({ name: "Camo Onesie", slogan: "Blend in", default_price: "99.99" });
    expect(await rows(sql`select 1 from features where product_id = ${result.productId}`)).toHaveLength(2);
  });

  it("DELETE removes the product and its features", async () => {
    const { result } = await accepted(await post("/products", product));
    const job = await accepted(await request(api.url, "DELETE", `/products/${result.productId}`));
    expect(job.result).toEqual({ productId: result.productId, deleted: true });
    expect(await rows(sql`select 1 from products where id = ${result.productId}`)).toHaveLength(0);
    expect(await rows(sql`select 1 from features where product_id = ${result.productId}`)).toHaveLength(0);
  });

  it("PATCH of a missing product fails at once, without retries, with a clear reason", async () => {
    const r = await request(api.url, "PATCH", "/products/777777", { json: { name: "ghost" } });
    const job = await accepted(r);
    expect(job).toMatchObject({ state: "failed", attempts: 1 });
    expect(job.error).toMatch(/^PRODUCT_NOT_FOUND: product 777777 does not exist/);
    expect(await rows(sql`select 1 from products where id = 777777`)).toHaveLength(0);
  });

  it("a write that fails for good is a failed job of its own in Bull Board, with its reason, while its carrier's other writes complete", async () => {
    // An API whose carriers wait for two writes: these two travel in one job.
    const pairs = await startApi(prefix, { CARRIER_WAIT_MS: "1000", CARRIER_MIN_WRITES: "2" });
    try {
      const [good, bad] = await Promise.all([
        request(pairs.url, "POST", "/products", { json: { name: "beside-the-ghost", category: "c", default_price: 1 } }),
        request(pairs.url, "PATCH", "/products/777778", { json: { name: "ghost" } }),
      ]);
      expect(carrierIdOf(good.body.jobId)).toBe(carrierIdOf(bad.body.jobId));
      expect((await accepted(good)).state).toBe("completed");
      expect((await accepted(bad)).state).toBe("failed");
      await expectOwnFailedJob(bad.body.jobId);
    } finally {
      await pairs.close();
    }
  });
});

/** A write that failed for good: a failed job of its own under its id, with its reason; its carrier completed. */
async function expectOwnFailedJob(writeId: string) {
  const queue = api.runtime.deps.queues.products;
  // A worker runs it once (it answers the recorded failure, applying nothing).
  await waitFor(async () => (await queue.getJobState(writeId)) === "failed", 10_000, "the write's own job to fail");
  const own = await queue.getJob(writeId);
  expect(own?.name).toBe("product.patch");
  expect(own?.failedReason).toBe("PRODUCT_NOT_FOUND: product 777778 does not exist");
  expect(await queue.getJobState(carrierIdOf(writeId)!)).toBe("completed");
}

describe("Idempotency-Key", () => {
  it("replaying a key returns the first jobId, before and after the job completed and left Redis", async () => {
    const body = { email: "idem@example.com", name: "Idem" };
    const headers = { "idempotency-key": "signup-form-123" };
    const first = await post("/registrations", body, headers);
    const replay = await post("/registrations", { name: "Idem", email: "idem@example.com" }, headers);
    expect(replay.status).toBe(202);
    expect(replay.body).toEqual(first.body);
    expect(replay.headers.get("location")).toBe(first.headers.get("location"));
    const done = await waitForJob(api.url, first.body.jobId);
    expect(done.state).toBe("completed");

    // Its carrier gone from Redis (as retention removes completed jobs): the answer holds.
    const queue = api.runtime.deps.producer["deps"].queues.registrations;
    expect(await queue.remove(carrierIdOf(first.body.jobId)!)).toBe(1);
    expect(await queue.getJob(carrierIdOf(first.body.jobId)!)).toBeUndefined();
    const later = await post("/registrations", body, headers);
    expect(later.status).toBe(202);
    expect(later.body.jobId).toBe(first.body.jobId);
    const status = await request(api.url, "GET", `/jobs/${first.body.jobId}`);
    expect(status.body).toMatchObject({ state: "completed", result: done.result });
    expect(await rows(sql`select 1 from registrations where email = 'idem@example.com'`)).toHaveLength(1);
    expect(await rows(sql`select 1 from job_ledger where name = 'registration.create' and result->>'registrationId' = ${String(done.result.registrationId)}`)).toHaveLength(1);
  });

  it("the same key with another body → 422, and nothing is enqueued", async () => {
    const headers = { "idempotency-key": "k-422" };
    const first = await post("/products", { name: "A", category: "c", default_price: 1 }, headers);
    expect(first.status).toBe(202);
    const other = await post("/products", { name: "B", category: "c", default_price: 1 }, headers);
    expect(other.status).toBe(422);
    expect(other.headers.get("content-type")).toMatch(/problem\+json/);
    const sameBodyOtherRoute = await request(api.url, "PUT", "/products/42", {
      json: { name: "A", category: "c", default_price: 1 },
      headers,
    });
    expect(sameBodyOtherRoute.status).toBe(422);
  });

  it("a key whose first request is still being accepted → 409; one whose job was never stored is taken over", async () => {
    const redis = api.runtime.deps.producer["deps"].redis;
    const { hashKey } = await import("@ingest/jobs");
    const body = { email: "pending@example.com", name: "P" };
    const { idempotencyFor } = await import("../apps/api/src/idempotency.js");
    const fake = { headers: { "idempotency-key": "k-pending" }, method: "POST", baseUrl: "", path: "/registrations" };
    const fingerprint = idempotencyFor(fake as never, { registration: body })!.fingerprint;
    const key = `${prefix}:idem:${hashKey("anonymous")}:${hashKey("k-pending")}`;
    const ghost = "reg-00000000-0000-4000-8000-000000000001";

    await redis.set(key, JSON.stringify({ f: fingerprint, j: ghost, t: Date.now() }));
    const busy = await post("/registrations", body, { "idempotency-key": "k-pending" });
    expect(busy.status).toBe(409);
    expect(busy.headers.get("retry-after")).toBeTruthy();

    await redis.set(key, JSON.stringify({ f: fingerprint, j: ghost, t: Date.now() - 60_000 }));
    const taken = await post("/registrations", body, { "idempotency-key": "k-pending" });
    expect(taken.status).toBe(202);
    expect(taken.body.jobId).not.toBe(ghost);
    expect((await waitForJob(api.url, taken.body.jobId)).state).toBe("completed");
  });
});
