import { sql } from "drizzle-orm";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { createDb } from "@ingest/db";
import { createScratchDatabase } from "../../../test/support/scratch.js";
import { envelope } from "./support/envelope.js";
import { applyWrite } from "../src/apply-write.js";
import type { WriteEnvelope } from "../src/write.js";
import { applyWrites } from "../src/apply-writes.js";
import { PredecessorPendingError } from "../src/errors.js";

// A database of this file's own: its fixed product ids must not meet the ids other
// files' creates draw from the shared sequence.
const scratch = await createScratchDatabase("apply_batch");
const { db, close } = createDb(scratch.url, { max: 4, applicationName: "ingest-test" });
afterAll(async () => {
  await close();
  await scratch.drop();
});

const reg = (email: string) => envelope("registration.create", { registration: { email, name: "N" } });
const put = (productId: number, name: string, seq: number, prevSeq: number | null, prevJobId?: string) =>
  envelope("product.replace", { productId, product: { name, category: "c", default_price: "1.00" } }, { seq, prevSeq, ...(prevJobId ? { prevJobId } : {}) });

const rows = async <T>(query: ReturnType<typeof sql>) => (await db.execute<T & Record<string, unknown>>(query)).rows;
const count = async (query: ReturnType<typeof sql>) => Number((await rows<{ n: string }>(query))[0]!.n);
const nameOf = async (id: number) => (await rows<{ name: string }>(sql`select name from products where id = ${id}`))[0]?.name;
/** Applies a batch and waits for every job's answer (those applied one by one come later). */
const batch = async (jobs: WriteEnvelope[]) => {
  const report = await applyWrites(db, jobs);
  return { fellBack: report.fellBack, settled: await Promise.all(report.settled) };
};
const values = (report: Awaited<ReturnType<typeof batch>>) =>
  report.settled.map((s) => (s.ok ? s.value : { error: (s.error as Error).constructor.name }));

describe("micro-batches", () => {
  it("applies a batch of registrations in one transaction, duplicates included, each with its own outcome", async () => {
    const tag = randomUUID().slice(0, 8);
    const [existing] = [reg(`old-${tag}@example.com`)];
    const first = await applyWrite(db, existing!);
    const jobs = [reg(`a-${tag}@example.com`), reg(`B-${tag}@example.com`), reg(`b-${tag}@EXAMPLE.com`), reg(`OLD-${tag}@example.com`)];
    const report = await batch(jobs);
    expect(report.fellBack).toBe(false);
    const [a, b, bTwin, old] = values(report) as { status: string; result: { registrationId: number; outcome: string } }[];
    expect(a).toMatchObject({ status: "completed", result: { outcome: "created" } });
    expect(b).toMatchObject({ status: "completed", result: { outcome: "created" } });
    // The same email twice in one batch: the second is the first's duplicate.
    expect(bTwin).toEqual({ status: "completed", result: { registrationId: b!.result.registrationId, outcome: "duplicate" } });
    expect(old).toEqual({ status: "completed", result: { registrationId: (first as { result: { registrationId: number } }).result.registrationId, outcome: "duplicate" } });
    const ids = jobs.map((j) => j.id);
    // Every ledger row and every new registration came from one transaction.
    expect(await count(sql`select count(*) as n from job_ledger where job_id in ${ids}`)).toBe(4);
    expect(await count(sql`select count(distinct xmin::text) as n from job_ledger where job_id in ${ids}`)).toBe(1);
    expect(await count(sql`select count(*) as n from registrations where email like ${`%-${tag}@%`}`)).toBe(3);
  });

  it("a job delivered again in a later batch answers its first outcome and changes nothing", async () => {
    const tag = randomUUID().slice(0, 8);
    const job = reg(`again-${tag}@example.com`);
    const firstReport = await batch([job, reg(`other-${tag}@example.com`)]);
    const again = { ...job, attemptsMade: 1, redelivered: true };
    // Marked as a redelivery (read from the ledger) and unmarked (found on commit, then one by one).
    for (const delivery of [again, job]) {
      const report = await batch([delivery, reg(`new-${tag}-${delivery.redelivered}@example.com`)]);
      expect(values(report)[0]).toEqual(values(firstReport)[0]);
      expect(values(report)[1]).toMatchObject({ status: "completed", result: { outcome: "created" } });
    }
    expect(await count(sql`select count(*) as n from registrations where email like ${`%-${tag}%`}`)).toBe(4);
  });

  it("the same batch delivered twice at once (lost lock, two workers) applies each job once", async () => {
    const tag = randomUUID().slice(0, 8);
    const jobs = [reg(`x-${tag}@example.com`), reg(`y-${tag}@example.com`), envelope("product.create", { product: { name: `Twin-${tag}`, category: "c", default_price: "2.00" } })];
    const [one, two] = await Promise.all([batch(jobs), batch([...jobs].reverse())]);
    expect(values(one)).toEqual(values(two).reverse());
    expect(await count(sql`select count(*) as n from registrations where email like ${`%-${tag}@%`}`)).toBe(2);
    expect(await count(sql`select count(*) as n from products where name = ${`Twin-${tag}`}`)).toBe(1);
  });

  it("one job that fails permanently fails alone: the batch is applied one by one and its neighbours commit", async () => {
    const tag = randomUUID().slice(0, 8);
    const missing = envelope("product.patch", { productId: 870_001, changes: { name: "x" } }, { seq: 5, prevSeq: null });
    const good = [reg(`ok1-${tag}@example.com`), put(870_002, "kept", 1, null)];
    const invalid = reg("not-an-email");
    const report = await batch([good[0]!, missing, invalid, good[1]!]);
    expect(report.fellBack).toBe(true);
    const [r, m, inv, p] = values(report);
    expect(r).toMatchObject({ status: "completed", result: { outcome: "created" } });
    expect(m).toEqual({ status: "failed", code: "PRODUCT_NOT_FOUND", message: "product 870001 does not exist" });
    expect(inv).toMatchObject({ status: "failed", code: "INVALID_PAYLOAD" });
    expect(p).toEqual({ status: "completed", result: { productId: 870_002 } });
    expect(await nameOf(870_002)).toBe("kept");
    expect(await count(sql`select count(*) as n from job_ledger where job_id = ${missing.id} and status = 'failed'`)).toBe(1);
  });

  it("a job stuck on a lock holds its neighbours for about a second, not until it is free", async () => {
    const tag = randomUUID().slice(0, 8);
    // A redelivered write (its first delivery still running) and two first deliveries.
    const stuck: WriteEnvelope = { ...reg(`stuck-${tag}@example.com`), attemptsMade: 1, redelivered: true };
    const neighbours = [reg(`n1-${tag}@example.com`), reg(`n2-${tag}@example.com`)];
    // The first delivery of the stuck write holds its ledger row, uncommitted.
    const blocker = new pg.Client({ connectionString: scratch.url });
    await blocker.connect();
    try {
      await blocker.query("begin");
      await blocker.query("insert into job_ledger (job_id, queue, name, status, accepted_at) values ($1, 'registrations', 'registration.create', 'active', now())", [stuck.id]);
      const started = performance.now();
      const report = await applyWrites(db, [stuck, ...neighbours]);
      expect(report.fellBack).toBe(true);
      const answered = await Promise.all(report.settled.slice(1));
      expect(answered.map((a) => a.ok && a.value.status)).toEqual(["completed", "completed"]);
      expect(performance.now() - started).toBeLessThan(5_000);
      const late = await Promise.race([report.settled[0], sleep(300).then(() => "still waiting")]);
      expect(late).toBe("still waiting");
      await blocker.query("rollback");
      expect(await report.settled[0]).toMatchObject({ ok: true, value: { status: "completed" } });
    } finally {
      await blocker.end();
    }
  });

  it("an invalid payload alone does not make the rest of the batch fall back", async () => {
    const tag = randomUUID().slice(0, 8);
    const report = await batch([reg(`v1-${tag}@example.com`), reg("bad"), reg(`v2-${tag}@example.com`)]);
    expect(report.fellBack).toBe(false);
    expect(values(report).map((v) => (v as { status: string }).status)).toEqual(["completed", "failed", "completed"]);
  });
});

describe("first deliveries of registrations: one statement", () => {
  it("the rows, their outbox rows and their ledger rows commit in one statement, duplicates answered", async () => {
    const tag = randomUUID().slice(0, 8);
    const old = await applyWrite(db, reg(`old-${tag}@example.com`));
    const writes = [reg(`a-${tag}@example.com`), reg(`A-${tag}@EXAMPLE.com`), reg(`OLD-${tag}@example.com`), reg(`b-${tag}@example.com`)];
    const report = await batch(writes);
    expect(report.fellBack).toBe(false);
    const [a, twin, dup, b] = values(report) as { status: string; result: { registrationId: number; outcome: string } }[];
    expect([a, twin, dup, b].map((v) => v!.result.outcome)).toEqual(["created", "duplicate", "duplicate", "created"]);
    expect(twin!.result.registrationId).toBe(a!.result.registrationId);
    expect(dup!.result.registrationId).toBe((old as { result: { registrationId: number } }).result.registrationId);
    // One transaction: the same xmin on every row it wrote.
    const xmins = await rows<{ x: string }>(sql`
      select xmin::text as x from registrations where id in (${a!.result.registrationId}, ${b!.result.registrationId})
      union select xmin::text from email_sends where registration_id in (${a!.result.registrationId}, ${b!.result.registrationId})
      union select xmin::text from job_ledger where job_id in (${writes[0]!.id}, ${writes[1]!.id}, ${writes[2]!.id}, ${writes[3]!.id})`);
    expect(xmins).toHaveLength(1);
  });

  it("a write another delivery recorded first makes the statement keep nothing: one by one, it answers the recorded outcome", async () => {
    const tag = randomUUID().slice(0, 8);
    const first = reg(`rec-${tag}@example.com`);
    const recorded = await applyWrite(db, first);
    const other = reg(`other-${tag}@example.com`);
    const report = await batch([first, other]);
    expect(report.fellBack).toBe(true);
    expect(values(report)).toEqual([recorded, { status: "completed", result: { registrationId: expect.any(Number), outcome: "created" } }]);
    expect(await count(sql`select count(*) as n from registrations where email like ${`%-${tag}@example.com`}`)).toBe(2);
  });
});

describe("product ids in a batch", () => {
  it("creates skip the ids PUTs took ahead of the sequence, and PUTs do not move it", async () => {
    const next = async () =>
      Number((await rows<{ id: string }>(sql`select case when is_called then last_value + 1 else last_value end as id from products_id_seq`))[0]!.id);
    const n = await next();
    await batch([put(n, "put-n", 1, null), put(n + 2, "put-n+2", 1, null), put(2_147_483_647, "put-max", 1, null)]);
    expect(await next()).toBe(n);
    const tag = randomUUID().slice(0, 8);
    const creates = [1, 2, 3].map((k) => envelope("product.create", { product: { name: `batch-${tag}-${k}`, category: "c", default_price: "1.00" } }));
    const report = await batch([reg(`ids-${tag}@example.com`), ...creates]);
    expect(report.fellBack).toBe(false);
    expect(values(report).slice(1)).toEqual([n + 1, n + 3, n + 4].map((productId) => ({ status: "completed", result: { productId } })));
    expect(await nameOf(n + 2)).toBe("put-n+2");
  });
});

describe("per-product order inside a batch", () => {
  it("applies one product's edits in sequence order whatever order they came in, the last one wins", async () => {
    const id = 880_001;
    const a = put(id, "first", 10, null);
    await applyWrite(db, a);
    const b = put(id, "second", 11, 10, a.id);
    const c = put(id, "third", 12, 11, b.id);
    const d = envelope("product.patch", { productId: id, changes: { slogan: "patched" } }, { seq: 13, prevSeq: 12, prevJobId: c.id });
    const report = await batch([d, c, b]);
    expect(report.fellBack).toBe(false);
    expect(values(report).every((v) => (v as { status: string }).status === "completed")).toBe(true);
    expect(await rows(sql`select name, slogan from products where id = ${id}`)).toEqual([{ name: "third", slogan: "patched" }]);
    expect(await rows(sql`select seq from product_versions where product_id = ${id}`)).toEqual([{ seq: 13 }]);
  });

  it("an edit whose predecessor is neither applied nor in the batch waits; the rest of the batch commits", async () => {
    const a = put(880_002, "applied", 20, null);
    const gap = put(880_003, "waits", 31, 30, "prd-not-yet");
    const report = await batch([a, gap]);
    expect(report.settled[0]).toEqual({ ok: true, value: { status: "completed", result: { productId: 880_002 } } });
    expect(report.settled[1]).toMatchObject({ ok: false, error: expect.any(PredecessorPendingError) });
    expect((report.settled[1] as { error: PredecessorPendingError }).error.prevJobId).toBe("prd-not-yet");
    expect(await count(sql`select count(*) as n from job_ledger where job_id = ${gap.id}`)).toBe(0);
    expect(await nameOf(880_003)).toBeUndefined();
  });

  it("an older edit arriving after a newer one in the same batch does not overwrite it", async () => {
    const id = 880_004;
    const newer = put(id, "newer", 41, 40, "prd-gone");
    const older = put(id, "older", 40, null);
    // The newer edit was given up waiting and applied alone; then both come round again together.
    await applyWrite(db, newer, { ignorePredecessor: true });
    const report = await batch([older, { ...newer, redelivered: true, attemptsMade: 1 }]);
    expect(values(report)).toEqual([
      { status: "completed", result: { productId: id } },
      { status: "completed", result: { productId: id } },
    ]);
    expect(await nameOf(id)).toBe("newer");
  });

  it("two batches editing the same products in opposite orders at once both commit (no deadlock), in order", async () => {
    const ids = [880_010, 880_011, 880_012];
    const firsts = ids.map((id) => put(id, "v1", 1, null));
    const seconds = ids.map((id, k) => put(id, "v2", 2, 1, firsts[k]!.id));
    const [x, y] = await Promise.all([batch(firsts), batch([...seconds].reverse())]);
    // The second edits may have gone first and waited: apply what waited, as the worker would.
    for (const [k, s] of y.settled.entries()) if (!s.ok) await applyWrite(db, [...seconds].reverse()[k]!);
    expect(x.settled.every((s) => s.ok)).toBe(true);
    for (const id of ids) expect(await nameOf(id)).toBe("v2");
  });
});
