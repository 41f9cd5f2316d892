// A migrated database of a test file's own, and dropping one.
import { join } from "node:path";
import { createDb, migrateDatabase, type DbHandle } from "@ingest/db";
import pg from "pg";
import { inject } from "vitest";

// Not taken from harness.ts: that would load the API's modules into every importer's tests.
const ROOT = join(import.meta.dirname, "..", "..");

export type ScratchDb = DbHandle & { url: string; name: string; drop: () => Promise<void> };

/**
 * A migrated database of the test file's own, beside the run's shared one: for data a
 * test must see alone (list pages) or a database it must take away (PostgreSQL down).
 * Global teardown drops any the file left behind.
 */
export async function createScratchDb(name: string, opts: { encoding?: "LATIN1" } = {}): Promise<ScratchDb> {
  const url = new URL(inject("databaseUrl"));
  const dbName = `${url.pathname.slice(1)}_${name.replace(/[^a-z0-9_]/gi, "_").toLowerCase()}`.slice(0, 63);
  url.pathname = `/${dbName}`;
  // A database in another encoding than UTF-8 refuses the characters it cannot hold.
  if (opts.encoding) await adminQuery(`create database "${dbName}" encoding '${opts.encoding}' lc_collate 'C' lc_ctype 'C' template template0`);
  await migrateDatabase(url.toString(), join(ROOT, "migrations"));
  const handle = createDb(url.toString(), { max: 4, applicationName: "ingest-test" });
  let dropped: Promise<void> | undefined;
  return {
    ...handle,
    url: url.toString(),
    name: dbName,
    drop: () =>
      (dropped ??= (async () => {
        await handle.close();
        await dropDatabase(dbName);
      })()),
  };
}

/** DROP DATABASE ... WITH (FORCE): ends every connection to it, then removes it. */
async function dropDatabase(name: string): Promise<void> {
  await adminQuery(`drop database if exists "${name.replaceAll('"', '""')}" with (force)`);
}

async function adminQuery(statement: string): Promise<void> {
  const admin = new URL(inject("databaseUrl"));
  admin.pathname = "/postgres";
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}
