import { productVersions, registrations } from "@ingest/db";
import { eq, sql } from "drizzle-orm";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { createDb } from "@ingest/db";
import { createScratchDatabase } from "../../../test/support/scratch.js";
import { envelope } from "./support/envelope.js";
import { applyWrite } from "../src/apply-write.js";
import { PredecessorPendingError } from "../src/errors.js";

// A database of this file's own: its fixed product ids must not meet the ids other
// files' creates draw from the shared sequence.
const scratch = await createScratchDatabase("apply");
const { db, close } = createDb(scratch.url, { max: 4, applicationName: "ingest-test" });
afterAll(async () => {
  await close();
  await scratch.drop();
});


const count = async (query: ReturnType<typeof sql>) => Number((await db.execute<{ n: string }>(query)).rows[0]!.n);
const nameOf = async (id: number) => (await db.execute<{ name: string }>(sql`select name from products where id = ${id}`)).rows[0]?.name;

describe("exactly-once effect", () => {
  it("the same job delivered twice, one after the other, applies once and answers the same result", async () => {
    const job = envelope("registration.create", { registration: { email: "twice@example.com", name: "T" } });
    const first = await applyWrite(db, job);
    // A retry reads the ledger first; a delivery not marked as one finds it on commit.
    const second = await applyWrite(db, { ...job, attemptsMade: 1, redelivered: true });
    const third = await applyWrite(db, job);
    expect(first).toEqual({ status: "completed", result: { registrationId: expect.any(Number), outcome: "created" } });
    expect(second).toEqual(first);
    expect(third).toEqual(first);
    expect(await count(sql`select count(*) as n from registrations where email = 'twice@example.com'`)).toBe(1);
  });

  it("the same job delivered twice at the same time (lock lost, two workers) applies once", async () => {
    const job = envelope("product.create", { product: { name: "Twin", category: "c", default_price: "1.00", features: [{ feature: "a", value: "b" }] } });
    const outcomes = await Promise.all([applyWrite(db, job), applyWrite(db, job), applyWrite(db, job)]);
    expect(new Set(outcomes.map((o) => JSON.stringify(o))).size).toBe(1);
    expect(await count(sql`select count(*) as n from products where name = 'Twin'`)).toBe(1);
    expect(await count(sql`select count(*) as n from features f join products p on p.id = f.product_id where p.name = 'Twin'`)).toBe(1);
  });

  it("a permanent failure is recorded once and repeats the same way on redelivery", async () => {
    const job = envelope("product.patch", { productId: 888_888, changes: { name: "x" } }, { seq: 10, prevSeq: null });
    const first = await applyWrite(db, job);
    expect(first).toEqual({ status: "failed", code: "PRODUCT_NOT_FOUND", message: "product 888888 does not exist" });
    expect(await applyWrite(db, job)).toEqual(first);
    const [v] = await db.select().from(productVersions).where(eq(productVersions.productId, 888_888));
    expect(v?.seq).toBe(10);
  });

  it("a payload that fails the schema fails permanently, without touching the tables", async () => {
    const job = envelope("registration.create", { registration: { email: "no-at-sign", name: "X" } });
    const outcome = await applyWrite(db, job);
    expect(outcome).toMatchObject({ status: "failed", code: "INVALID_PAYLOAD" });
    expect(await db.select().from(registrations).where(eq(registrations.email, "no-at-sign"))).toHaveLength(0);
  });
});

describe("per-product order", () => {
  const put = (productId: number, name: string, seq: number, prevSeq: number | null, prevJobId?: string) =>
    envelope("product.replace", { productId, product: { name, category: "c", default_price: "1.00" } }, { seq, prevSeq, ...(prevJobId ? { prevJobId } : {}) });

  it("an edit delivered before its predecessor waits for it", async () => {
    const a = put(900_001, "A", 100, null);
    const b = put(900_001, "B", 101, 100, a.id);
    await expect(applyWrite(db, b)).rejects.toBeInstanceOf(PredecessorPendingError);
    // Nothing of B was kept: not even its ledger row.
    expect(await count(sql`select count(*) as n from job_ledger where job_id = ${b.id}`)).toBe(0);
    await applyWrite(db, a);
    await applyWrite(db, b);
    expect(await nameOf(900_001)).toBe("B");
  });

  it("two edits delivered out of order keep the newer: the older one is skipped", async () => {
    const a = put(900_002, "older", 200, null);
    const b = put(900_002, "newer", 201, 200, a.id);
    // The predecessor was given up on (gone from the queue): the newer edit applies alone...
    await applyWrite(db, b, { ignorePredecessor: true });
    // ...and when the older one turns up after all, it must not overwrite it.
    expect(await applyWrite(db, a)).toEqual({ status: "completed", result: { productId: 900_002 } });
    expect(await nameOf(900_002)).toBe("newer");
  });

  it("an older edit cannot bring back a product deleted by a newer one", async () => {
    const a = put(900_003, "alive", 300, null);
    await applyWrite(db, a);
    const del = envelope("product.delete", { productId: 900_003 }, { seq: 302, prevSeq: 301 });
    await applyWrite(db, del, { ignorePredecessor: true });
    const late = put(900_003, "zombie", 301, 300, a.id);
    await applyWrite(db, late);
    expect(await nameOf(900_003)).toBeUndefined();
  });
});

describe("product ids", () => {
  const replace = (productId: number, name: string) =>
    envelope("product.replace", { productId, product: { name, category: "c", default_price: "1.00" } }, { seq: 1, prevSeq: null });
  const create = (name: string) => envelope("product.create", { product: { name, category: "c", default_price: "1.00" } });
  const createdId = async (name: string) => {
    const outcome = await applyWrite(db, create(name));
    expect(outcome).toEqual({ status: "completed", result: { productId: expect.any(Number) } });
    return (outcome as { result: { productId: number } }).result.productId;
  };
  /** The id the sequence hands out next, without taking it. */
  const nextId = async () =>
    Number((await db.execute<{ id: string }>(sql`select case when is_called then last_value + 1 else last_value end as id from products_id_seq`)).rows[0]!.id);

  it("a PUT at the largest id leaves the sequence alone: creates after it still get fresh ids", async () => {
    const before = await nextId();
    expect(await applyWrite(db, replace(2_147_483_647, "max"))).toEqual({ status: "completed", result: { productId: 2_147_483_647 } });
    expect(await nextId()).toBe(before);
    const ids = [await createdId("after-max-1"), await createdId("after-max-2"), await createdId("after-max-3")];
    expect(ids).toEqual([before, before + 1, before + 2]);
  });

  it("a create skips the ids PUTs took ahead of the sequence, and PUTs do not move it", async () => {
    const n = await nextId();
    for (const id of [n, n + 1, n + 2, n + 4]) await applyWrite(db, replace(id, `put-${id}`));
    expect(await nextId()).toBe(n);
    expect(await createdId("skips-1")).toBe(n + 3);
    expect(await createdId("skips-2")).toBe(n + 5);
    expect(await nameOf(n + 4)).toBe(`put-${n + 4}`);
  });

  it("a create that draws the id of a PUT not committed yet waits for it, then takes the next free id", async () => {
    const n = await nextId();
    const blocker = new pg.Client({ connectionString: scratch.url });
    await blocker.connect();
    try {
      await blocker.query("begin");
      await blocker.query("insert into products (id, name, category, default_price) values ($1, 'in flight', 'c', 1)", [n]);
      const created = applyWrite(db, create("behind-put"));
      expect(await Promise.race([created, sleep(300).then(() => "waiting")])).toBe("waiting");
      await blocker.query("commit");
      expect(await created).toEqual({ status: "completed", result: { productId: n + 1 } });
      expect(await nameOf(n)).toBe("in flight");
    } finally {
      await blocker.end();
    }
  });
});
