// Applies the committed migrations under an advisory lock, creating the database first when it is missing.
import { drizzle } from "drizzle-orm/node-postgres";
import { migrate } from "drizzle-orm/node-postgres/migrator";
import pg from "pg";

// Any constant works; it only has to be the same in every process that migrates.
const MIGRATION_LOCK_KEY = 727_274_001;

type Log = (msg: string) => void;

/** Creates the database named in the URL when it is missing (several processes may race). */
async function ensureDatabase(url: string, log: Log = () => {}): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ""));
  if (!name) throw new Error("DATABASE_URL names no database");
  const admin = new URL(url);
  admin.pathname = "/postgres";
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    const found = await client.query("select 1 from pg_database where datname = $1", [name]);
    if (found.rowCount) return;
    try {
      await client.query(`create database "${name.replaceAll('"', '""')}"`);
      log(`created database ${name}`);
    } catch (err) {
      // 42P04 duplicate_database, 23505 when two CREATEs race on the catalog.
      const code = (err as { code?: string }).code;
      if (code !== "42P04" && code !== "23505") throw err;
    }
  } finally {
    await client.end();
  }
}

/** Applies pending migrations under a session advisory lock, so concurrent runs take turns. */
export async function migrateDatabase(url: string, migrationsFolder: string, log: Log = () => {}): Promise<void> {
  await ensureDatabase(url, log);
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    await client.query("set client_min_messages = warning");
    await client.query("select pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
    try {
      await migrate(drizzle(client), { migrationsFolder });
    } finally {
      await client.query("select pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]);
    }
  } finally {
    await client.end();
  }
}
