import { productVersions, registrations } from "@ingest/db";
import { eq, sql } from "drizzle-orm";
import { afterAll, describe, expect, it } from "vitest";
import { createDb } from "@ingest/db";
import { createScratchDatabase } from "./support/scratch.js";
import { envelope } from "./support/envelope.js";
import { applyJob } from "../src/apply.js";
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

describe("exactly-once effect", () => {
  it("the same job delivered twice, one after the other, applies once and answers the same result", async () => {
    const job = envelope("registration.create", { registration: { email: "twice@example.com", name: "T" } });
    const first = await applyJob(db, job);
    // A retry reads the ledger first; a delivery not marked as one finds it on commit.
    const second = await applyJob(db, { ...job, attemptsMade: 1, redelivered: true });
    const third = await applyJob(db, job);
    expect(first).toEqual({ status: "completed", result: { registrationId: expect.any(Number), outcome: "created" } });
    expect(second).toEqual(first);
    expect(third).toEqual(first);
    expect(await count(sql`select count(*) as n from registrations where email = 'twice@example.com'`)).toBe(1);
  });

  it("the same job delivered twice at the same time (lock lost, two workers) applies once", async () => {
    const job = envelope("product.create", { product: { name: "Twin", category: "c", default_price: "1.00", features: [{ feature: "a", value: "b" }] } });
    const outcomes = await Promise.all([applyJob(db, job), applyJob(db, job), applyJob(db, job)]);
    expect(new Set(outcomes.map((o) => JSON.stringify(o))).size).toBe(1);
    expect(await count(sql`select count(*) as n from products where name = 'Twin'`)).toBe(1);
    expect(await count(sql`select count(*) as n from features f join products p on p.id = f.product_id where p.name = 'Twin'`)).toBe(1);
  });

  it("a permanent failure is recorded once and repeats the same way on redelivery", async () => {
    const job = envelope("product.patch", { productId: 888_888, changes: { name: "x" } }, { seq: 10, prevSeq: null });
    const first = await applyJob(db, job);
    expect(first).toEqual({ status: "failed", code: "PRODUCT_NOT_FOUND", message: "product 888888 does not exist" });
    expect(await applyJob(db, job)).toEqual(first);
    const [v] = await db.select().from(productVersions).where(eq(productVersions.productId, 888_888));
    expect(v?.seq).toBe(10);
  });

  it("a payload that fails the schema fails permanently, without touching the tables", async () => {
    const job = envelope("registration.create", { registration: { email: "no-at-sign", name: "X" } });
    const outcome = await applyJob(db, job);
    expect(outcome).toMatchObject({ status: "failed", code: "INVALID_PAYLOAD" });
    expect(await db.select().from(registrations).where(eq(registrations.email, "no-at-sign"))).toHaveLength(0);
  });
});

describe("per-product order", () => {
  const put = (productId: number, name: string, seq: number, prevSeq: number | null, prevJobId?: string) =>
    envelope("product.replace", { productId, product: { name, category: "c", default_price: "1.00" } }, { seq, prevSeq, ...(prevJobId ? { prevJobId } : {}) });
  const nameOf = async (id: number) => (await db.execute<{ name: string }>(sql`select name from products where id = ${id}`)).rows[0]?.name;

  it("an edit delivered before its predecessor waits for it", async () => {
    const a = put(900_001, "A", 100, null);
    const b = put(900_001, "B", 101, 100, a.id);
    await expect(applyJob(db, b)).rejects.toBeInstanceOf(PredecessorPendingError);
    // Nothing of B was kept: not even its ledger row.
    expect(await count(sql`select count(*) as n from job_ledger where job_id = ${b.id}`)).toBe(0);
    await applyJob(db, a);
    await applyJob(db, b);
    expect(await nameOf(900_001)).toBe("B");
  });

  it("two edits delivered out of order keep the newer: the older one is skipped", async () => {
    const a = put(900_002, "older", 200, null);
    const b = put(900_002, "newer", 201, 200, a.id);
    // The predecessor was given up on (gone from the queue): the newer edit applies alone...
    await applyJob(db, b, { ignorePredecessor: true });
    // ...and when the older one turns up after all, it must not overwrite it.
    expect(await applyJob(db, a)).toEqual({ status: "completed", result: { productId: 900_002 } });
    expect(await nameOf(900_002)).toBe("newer");
  });

  it("an older edit cannot bring back a product deleted by a newer one", async () => {
    const a = put(900_003, "alive", 300, null);
    await applyJob(db, a);
    const del = envelope("product.delete", { productId: 900_003 }, { seq: 302, prevSeq: 301 });
    await applyJob(db, del, { ignorePredecessor: true });
    const late = put(900_003, "zombie", 301, 300, a.id);
    await applyJob(db, late);
    expect(await nameOf(900_003)).toBeUndefined();
  });
});
