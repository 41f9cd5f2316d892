// Keeps the tables the writes fill in shape for the planner. A plan is cached per
// connection (the prepared statements, the foreign-key checks PostgreSQL runs for each
// row); one made while a table was small seq-scans it forever after, until an ANALYZE of
// the table throws it away. Autovacuum analyzes, but only every minute at best, and some
// servers run without it: a fresh table would then cost more with every row it gets.
// Without autovacuum, the outbox's dead rows (sent emails) are vacuumed here too, or every
// sweep for missed emails would step over all of them.
import type { Db } from "@ingest/db";
import type { Logger } from "./logger.js";

/** The tables the write path inserts into. */
const WRITE_TABLES = ["registrations", "email_sends", "job_ledger", "products", "features", "product_versions"] as const;

// ANALYZE a table once this many rows changed since its last one, plus half its rows
// (autovacuum's own rule, made lazier: its defaults are 50 + 10%); VACUUM once this many
// rows are dead, plus a fifth of the live ones.
const BASE_ROWS = 1_000;
const ANALYZE_SHARE = 0.5;
const VACUUM_SHARE = 0.2;
// One process at a time does it (the others find the lock taken and skip).
const LOCK_KEY = "ingest:table-maintenance";
// VACUUM runs without a statement timeout; the client still gives up on a dead connection.
const MAINTENANCE_TIMEOUT_MS = 3_600_000;

type Analyzer = { runOnce(): Promise<string[]>; start(): void; close(): Promise<void> };

type Due = { relname: string; analyze: boolean; vacuum: boolean };

export function createAnalyzer(db: Db, log: Logger, { intervalMs = 5_000, tables = WRITE_TABLES as readonly string[] } = {}): Analyzer {
  /** Answers what it did: "analyze <table>" and "vacuum <table>" entries. */
  async function runOnce(): Promise<string[]> {
    const client = await db.$client.connect();
    const done: string[] = [];
    try {
      const { rows } = await client.query<Due>(
        `select relname,
                n_mod_since_analyze > $2::int + $3::float8 * greatest(n_live_tup - n_mod_since_analyze, 0) as analyze,
                not current_setting('autovacuum')::boolean and n_dead_tup > $2::int + $4::float8 * n_live_tup as vacuum
         from pg_stat_user_tables
         where schemaname = current_schema() and relname = any($1::text[])`,
        [tables, BASE_ROWS, ANALYZE_SHARE, VACUUM_SHARE],
      );
      const due = rows.filter((r) => r.analyze || r.vacuum);
      if (due.length === 0) return done;
      const [lock] = (await client.query<{ ok: boolean }>("select pg_try_advisory_lock(hashtext($1)) as ok", [LOCK_KEY])).rows;
      if (!lock?.ok) return done;
      try {
        // A large table's VACUUM may take longer than the pool's statement timeout; paced
        // as autovacuum paces itself (a short sleep every so many pages), so that it does
        // not take a core from the writes in one go.
        await client.query("set statement_timeout = 0; set vacuum_cost_delay = '2ms'");
        for (const { relname, analyze, vacuum } of due) {
          const table = `"${relname.replaceAll('"', '""')}"`;
          // VACUUM (ANALYZE) does both in one pass; neither blocks the writes.
          const text = vacuum ? `vacuum${analyze ? " (analyze)" : ""} ${table}` : `analyze ${table}`;
          // pg's per-statement query_timeout is missing from its QueryConfig type.
          await client.query({ text, query_timeout: MAINTENANCE_TIMEOUT_MS } as { text: string });
          if (vacuum) done.push(`vacuum ${relname}`);
          if (analyze) done.push(`analyze ${relname}`);
        }
      } finally {
        await client.query("reset statement_timeout; reset vacuum_cost_delay");
        await client.query("select pg_advisory_unlock(hashtext($1))", [LOCK_KEY]);
      }
      if (done.length) log.debug({ done }, "write tables maintained");
      return done;
    } finally {
      client.release();
    }
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
