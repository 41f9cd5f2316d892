import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request, spawnWorker, startApi, testEnv, waitForJob, type Api, type WorkerProcess } from "./support/harness.js";
import { createScratchDb, type ScratchDb } from "./support/scratch-db.js";

// A database of the file's own: these tests write at the id sequence's next values and
// at the largest id, which must not meet other files' products.
const { prefix } = testEnv("product-ids");
let scratch: ScratchDb;
let api: Api;
let worker: WorkerProcess;

beforeAll(async () => {
  scratch = await createScratchDb("product_ids");
  [api, worker] = await Promise.all([
    startApi(prefix, { DATABASE_URL: scratch.url }),
    spawnWorker(prefix, { DATABASE_URL: scratch.url }),
  ]);
});
afterAll(async () => {
  await worker?.stop();
  await api?.close();
  await scratch?.drop();
});

const product = (name: string) => ({ name, category: "c", default_price: 1 });
const completed = async (r: Awaited<ReturnType<typeof request>>) => {
  expect(r.status, r.text).toBe(202);
  const job = await waitForJob(api.url, r.body.jobId);
  expect(job.state, JSON.stringify(job)).toBe("completed");
  return job;
};
const put = async (id: number, name: string) => completed(await request(api.url, "PUT", `/products/${id}`, { json: product(name) }));
const post = async (name: string) => (await completed(await request(api.url, "POST", "/products", { json: product(name) }))).result.productId as number;
const bulk = (lines: unknown[]) =>
  request(api.url, "POST", "/products/bulk", { body: lines.map((l) => JSON.stringify(l)).join("\n"), headers: { "content-type": "application/x-ndjson" } });
/** The id the sequence hands out next, without taking it. */
const nextId = async () =>
  Number((await scratch.db.execute<{ id: string }>(sql`select case when is_called then last_value + 1 else last_value end as id from products_id_seq`)).rows[0]!.id);
const idOf = async (name: string) => (await scratch.db.execute<{ id: number }>(sql`select id from products where name = ${name}`)).rows.map((r) => r.id);

describe("product ids", () => {
  it("a PUT at the largest id does not stop later POSTs: each gets a fresh id of its own", async () => {
    await put(2_147_483_647, "at the largest id");
    const ids = await Promise.all([post("after max 1"), post("after max 2"), post("after max 3")]);
    expect(new Set(ids).size).toBe(3);
    expect(ids.every((id) => id < 2_147_483_647)).toBe(true);
    expect(await idOf("at the largest id")).toEqual([2_147_483_647]);
  });

  it("a POST after a PUT at the sequence's next id skips it; PUTs do not move the sequence", async () => {
    const n = await nextId();
    await put(n, "put at next");
    await put(n + 2, "put two ahead");
    expect(await nextId()).toBe(n);
    expect(await post("skips one")).toBe(n + 1);
    expect(await post("skips two")).toBe(n + 3);
    expect(await idOf("put at next")).toEqual([n]);
    expect(await idOf("put two ahead")).toEqual([n + 2]);
  });

  it("bulk create lines skip the ids bulk replace lines took, in the same way", async () => {
    const n = await nextId();
    const replaced = await bulk([
      { op: "replace", id: n, product: product("bulk put at next") },
      { op: "replace", id: n + 2, product: product("bulk put two ahead") },
      { op: "replace", id: 2_147_483_647, product: product("bulk at the largest id") },
    ]);
    expect((await completed(replaced)).result).toMatchObject({ applied: 3, failed: 0 });
    const created = await bulk([
      { op: "create", product: product("bulk create 1") },
      { op: "create", product: product("bulk create 2") },
    ]);
    expect((await completed(created)).result).toMatchObject({ applied: 2, failed: 0 });
    expect([...(await idOf("bulk create 1")), ...(await idOf("bulk create 2"))]).toEqual([n + 1, n + 3]);
  });
});
