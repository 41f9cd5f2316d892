// Keeps the planner's statistics of the tables the writes fill up to date. A plan is cached
// per connection (the prepared statements, the foreign-key checks PostgreSQL runs for each
// row); one made while a table was small seq-scans it forever after, until an ANALYZE of
// the table throws it away. Autovacuum analyzes, but only every minute at best, and some
// servers run without it: a fresh table would then cost more with every row it gets.
import type { Db } from "@ingest/db";
import { sql } from "drizzle-orm";
import type { Logger } from "./logger.js";

/** The tables the write path inserts into. */
export const WRITE_TABLES = ["registrations", "email_sends", "job_ledger", "products", "features", "product_versions"] as const;

// ANALYZE a table once this many rows changed since its last one, plus this share of its rows
// (autovacuum's own rule, with its default threshold of 50 + 10%, made a little lazier).
const BASE_ROWS = 500;
const SHARE = 0.2;
// One process at a time runs the ANALYZEs (the others find the lock taken and skip).
const LOCK = sql`hashtext('ingest:analyze')`;

export type Analyzer = { runOnce(): Promise<string[]>; start(): void; close(): Promise<void> };

export function createAnalyzer(db: Db, log: Logger, { intervalMs = 5_000, tables = WRITE_TABLES as readonly string[] } = {}): Analyzer {
  async function runOnce(): Promise<string[]> {
    const { rows } = await db.execute<{ relname: string }>(sql`
      select relname from pg_stat_user_tables
      where schemaname = current_schema() and relname in (select value from jsonb_array_elements_text(${JSON.stringify(tables)}::jsonb))
        and n_mod_since_analyze > ${sql.raw(String(BASE_ROWS))} + ${sql.raw(String(SHARE))} * greatest(n_live_tup - n_mod_since_analyze, 0)`);
    if (rows.length === 0) return [];
    const analyzed: string[] = [];
    // A session lock on one connection of the pool, released on that same connection.
    await db.transaction(async (tx) => {
      const [got] = (await tx.execute<{ ok: boolean }>(sql`select pg_try_advisory_xact_lock(${LOCK}) as ok`)).rows;
      if (!got?.ok) return;
      for (const { relname } of rows) {
        await tx.execute(sql.raw(`analyze "${relname.replaceAll('"', '""')}"`));
        analyzed.push(relname);
      }
    });
    if (analyzed.length) log.debug({ tables: analyzed }, "tables analyzed");
    return analyzed;
  }

  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = false;
  const tick = () => {
    running = runOnce()
      .catch((err) => log.warn({ err }, "could not analyze the write tables; trying again later"))
      .finally(() => {
        running = undefined;
        if (!stopped) timer = setTimeout(tick, intervalMs);
      });
  };
  return {
    runOnce,
    start() {
      if (!timer && !running && !stopped) timer = setTimeout(tick, intervalMs);
    },
    async close() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
