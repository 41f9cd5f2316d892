import { sql } from "drizzle-orm";
import { randomUUID } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { createDb } from "@ingest/db";
import { createScratchDatabase } from "../../../test/support/scratch.js";
import { envelope } from "./support/envelope.js";
import { applyWrite } from "../src/apply-write.js";
import type { Outcome } from "../src/write.js";
import { applyWrites } from "../src/apply-writes.js";
import { invalidDataError } from "../src/errors.js";

// Data the payload schema lets through but PostgreSQL refuses: in a LATIN1 database, a
// character that encoding has no room for (registrations travel as one JSON parameter,
// products as text columns: both paths).
const scratch = await createScratchDatabase("invalid_data", { encoding: "LATIN1" });
const { db, close } = createDb(scratch.url, { max: 4, applicationName: "ingest-test" });
afterAll(async () => {
  await close();
  await scratch.drop();
});

const UNTRANSLATABLE = "名前";

const count = async (query: ReturnType<typeof sql>) => Number((await db.execute<{ n: string }>(query)).rows[0]!.n);
const nameOf = async (id: number) => (await db.execute<{ name: string }>(sql`select name from products where id = ${id}`)).rows[0]?.name;
const reg = (email: string, name = "N") => envelope("registration.create", { registration: { email, name } });
const put = (productId: number, name: string, seq: number, prevSeq: number | null, prevJobId?: string) =>
  envelope("product.replace", { productId, product: { name, category: "c", default_price: "1.00" } }, { seq, prevSeq, ...(prevJobId ? { prevJobId } : {}) });
const create = (name: string) => envelope("product.create", { product: { name, category: "c", default_price: "1.00" } });
const codeOf = (o: Outcome) => (o.status === "failed" ? o.code : o.status);

describe("data PostgreSQL rejects", () => {
  it("fails the job at once as INVALID_DATA with PostgreSQL's reason, recorded like any permanent failure", async () => {
    const tag = randomUUID().slice(0, 8);
    const job = reg(`latin-${tag}@example.com`, UNTRANSLATABLE);
    const outcome = await applyWrite(db, job);
    expect(outcome).toMatchObject({ status: "failed", code: "INVALID_DATA", message: expect.stringContaining('has no equivalent in encoding "LATIN1"') });
    // A redelivery answers the same from the ledger.
    expect(await applyWrite(db, { ...job, attemptsMade: 1, redelivered: true })).toEqual(outcome);
    expect(await count(sql`select count(*) as n from job_ledger where job_id = ${job.id} and status = 'failed'`)).toBe(1);
    expect(await count(sql`select count(*) as n from registrations where email = ${`latin-${tag}@example.com`}`)).toBe(0);

    const untranslatable = await applyWrite(db, create(UNTRANSLATABLE));
    expect(untranslatable).toMatchObject({ status: "failed", code: "INVALID_DATA", message: expect.stringContaining('has no equivalent in encoding "LATIN1"') });
  });

  it("an edit that fails so ends its turn: the product's next edit applies at once", async () => {
    const bad = put(600_001, UNTRANSLATABLE, 10, null);
    expect(codeOf(await applyWrite(db, bad))).toBe("INVALID_DATA");
    expect(await applyWrite(db, put(600_001, "after", 11, 10, bad.id))).toEqual({ status: "completed", result: { productId: 600_001 } });
    expect(await nameOf(600_001)).toBe("after");
  });

  it("in a micro-batch fails only its own job: the neighbours and the product's next edit commit", async () => {
    const tag = randomUUID().slice(0, 8);
    const bad = put(600_002, UNTRANSLATABLE, 20, null);
    const jobs = [
      reg(`ok-${tag}@example.com`),
      reg(`latin-${tag}@example.com`, UNTRANSLATABLE),
      bad,
      put(600_002, "after", 21, 20, bad.id),
      create(`created-${tag}`),
    ];
    const report = await applyWrites(db, jobs);
    expect(report.fellBack).toBe(true);
    const settled = await Promise.all(report.settled);
    expect(settled.map((s) => (s.ok ? codeOf(s.value) : String(s.error)))).toEqual(["completed", "INVALID_DATA", "INVALID_DATA", "completed", "completed"]);
    expect(await nameOf(600_002)).toBe("after");
    expect(await count(sql`select count(*) as n from products where name = ${`created-${tag}`}`)).toBe(1);
    expect(await count(sql`select count(*) as n from job_ledger where job_id in ${jobs.map((j) => j.id)} and status = 'failed'`)).toBe(2);
  });

  it("is told apart from the errors a retry may get past", () => {
    const pgError = (code: string) => Object.assign(new Error(`pg ${code}`), { code });
    // Drizzle wraps the driver's error; the SQLSTATE is on its cause.
    const wrapped = (code: string) => new Error("Failed query: insert ...", { cause: pgError(code) });
    for (const code of ["22021", "22P05", "22003", "2200H", "23502", "23514"]) {
      expect(invalidDataError(wrapped(code))).toMatchObject({ code: "INVALID_DATA", message: `pg ${code}` });
    }
    // Another delivery's ledger row, a concurrent delete, a deadlock, a restart, a cut connection.
    for (const code of ["23505", "23503", "40P01", "57P01", "ECONNRESET"]) expect(invalidDataError(wrapped(code))).toBeUndefined();
  });
});
