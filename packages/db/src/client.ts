import { drizzle, type NodePgDatabase } from "drizzle-orm/node-postgres";
import pg from "pg";
import * as schema from "./schema/index.js";

export type Db = NodePgDatabase<typeof schema>;
export type DbHandle = { db: Db; pool: pg.Pool; close: () => Promise<void> };

// numeric comes back as a string by default, which is what prices should be;
// int8 (bigint) columns hold sequence numbers that fit in a double.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export function createDb(
  url: string,
  opts: { max?: number; applicationName?: string; statementTimeoutMs?: number } = {},
): DbHandle {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? "ingest",
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    statement_timeout: opts.statementTimeoutMs ?? 30_000,
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
