import { createDb } from "@ingest/db";
import { sql } from "drizzle-orm";
import { afterAll, describe, expect, it } from "vitest";
import { waitFor } from "../../../test/support/harness.js";
import { createLogger } from "../src/logger.js";
import { createAnalyzer } from "../src/statistics.js";
import { createScratchDatabase } from "../../../test/support/scratch.js";

const scratch = await createScratchDatabase("statistics");
const { db, close } = createDb(scratch.url, { max: 3, applicationName: "ingest-test" });
afterAll(async () => {
  await close();
  await scratch.drop();
});

const lastAnalyze = async (table: string) =>
  (await db.execute<{ at: string | null }>(sql`select last_analyze::text as at from pg_stat_user_tables where relname = ${table}`)).rows[0]?.at ?? null;

describe("statistics of the write tables", () => {
  it("a table that grew is analyzed, and one that did not is left alone", async () => {
    const analyzer = createAnalyzer(db, createLogger("silent", false));
    await db.execute(sql`
      insert into registrations (email, name, job_id)
      select 'stats-' || g || '@example.com', 'N', 'reg-stats-' || g from generate_series(1, 2000) g`);
    // The activity counters reach the statistics system within about a second.
    await waitFor(async () => (await analyzer.runOnce()).includes("analyze registrations"), 10_000, "registrations analyzed");
    expect(await lastAnalyze("registrations")).not.toBeNull();
    expect(await lastAnalyze("products")).toBeNull();
    // Right after, nothing changed: nothing to do.
    expect(await analyzer.runOnce()).toEqual([]);
  });

  it("without autovacuum, the outbox's dead rows (sent emails) are vacuumed; with it, left to autovacuum", async () => {
    const analyzer = createAnalyzer(db, createLogger("silent", false));
    const [{ on } = { on: "on" }] = (await db.execute<{ on: string }>(sql`select current_setting('autovacuum') as on`)).rows;
    await db.execute(sql`
      insert into email_sends (registration_id, kind, recipient, status)
      select id, 'welcome', email, 'pending' from registrations where email like 'stats-%'`);
    await db.execute(sql`update email_sends set status = 'sent', message_id = '<m>' where recipient like 'stats-%'`);
    const vacuumed = async () => (await db.execute<{ at: string | null }>(sql`select last_vacuum::text as at from pg_stat_user_tables where relname = 'email_sends'`)).rows[0]?.at ?? null;
    if (on === "off") {
      await waitFor(async () => (await analyzer.runOnce()).includes("vacuum email_sends"), 10_000, "email_sends vacuumed");
      expect(await vacuumed()).not.toBeNull();
    } else {
      await waitFor(async () => (await analyzer.runOnce()).includes("analyze email_sends"), 10_000, "email_sends analyzed");
      expect(await vacuumed()).toBeNull();
    }
  });
});
