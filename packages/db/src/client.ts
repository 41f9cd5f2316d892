import { drizzle, type NodePgDatabase } from "drizzle-orm/node-postgres";
import pg from "pg";
import * as schema from "./schema/index.js";

// $client: the pool itself, for the few statements that are prepared by name.
export type Db = NodePgDatabase<typeof schema> & { $client: pg.Pool };
export type DbHandle = { db: Db; pool: pg.Pool; close: () => Promise<void> };

// numeric comes back as a string by default, which is what prices should be;
// int8 (bigint) columns hold sequence numbers that fit in a double.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

/** Settings every session of the pool starts with (libpq's `options`). */
function sessionOptions(opts: { lockTimeoutMs?: number; genericPlans?: boolean }) {
  const settings = [
    // A lock held by something stuck fails the statement (and its job retries) instead of holding it for good.
    ...(opts.lockTimeoutMs ? [`-c lock_timeout=${opts.lockTimeoutMs}`] : []),
    // Statements prepared by name keep one plan: the hot ones take longer to plan than to run.
    ...(opts.genericPlans ? ["-c plan_cache_mode=force_generic_plan"] : []),
  ];
  return settings.length ? { options: settings.join(" ") } : {};
}

export function createDb(
  url: string,
  opts: { max?: number; applicationName?: string; statementTimeoutMs?: number; lockTimeoutMs?: number; genericPlans?: boolean } = {},
): DbHandle {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? "ingest",
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    statement_timeout: opts.statementTimeoutMs ?? 30_000,
    ...sessionOptions(opts),
  });
  // A client losing its server (restart, pg_terminate_backend) emits "error": idle
  // ones through the pool, checked-out ones on themselves. Without listeners the
  // process would crash; the query in flight fails (and its job retries), and the
  // pool replaces the client.
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  const db = drizzle(pool, { schema });
  let closing: Promise<void> | undefined;
  return { db, pool, close: () => (closing ??= pool.end()) };
}
