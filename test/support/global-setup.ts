// vitest global setup: one migrated database and queue prefix per run, removed afterwards.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL } from "@ingest/config";
import { migrateDatabase } from "@ingest/db";
import { Redis } from "ioredis";
import pg from "pg";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string;
    redisUrl: string;
    runId: string;
  }
}

const ROOT = join(import.meta.dirname, "..", "..");

/**
 * One database and one queue prefix per run, made from the real migrations and
 * removed afterwards; the user's own data is never touched. PostgreSQL and Redis
 * must answer: the run fails (it does not skip) when they do not.
 */
export default async function setup(project: TestProject) {
  // Every project that needs the services calls this; the first prepares the run, the
  // last to finish removes it.
  const shared = globalThis as { ingestTestRun?: { ready: Promise<PreparedRun>; users: number } };
  const entry = (shared.ingestTestRun ??= { ready: prepareRun(), users: 0 });
  entry.users++;
  const prepared = await entry.ready;
  project.provide("databaseUrl", prepared.databaseUrl);
  project.provide("redisUrl", prepared.redisUrl);
  project.provide("runId", prepared.runId);
  return async () => {
    if (--entry.users > 0) return;
    shared.ingestTestRun = undefined;
    await prepared.teardown();
  };
}

type PreparedRun = { databaseUrl: string; redisUrl: string; runId: string; teardown: () => Promise<void> };

async function prepareRun(): Promise<PreparedRun> {
  const run = `${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;
  const base = new URL(process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL);
  const dbName = `ingest_test_${run}`;
  const databaseUrl = new URL(base);
  databaseUrl.pathname = `/${dbName}`;
  const redisUrl = process.env.REDIS_URL ?? DEFAULT_REDIS_URL;
  // Each test file takes its own prefix under this one (see harness.ts).
  const queuePrefix = `{ingest-test-${run}-`;

  // The tests start the worker as it runs in production: compiled.
  for (const app of ["api", "worker"]) {
    execFileSync(process.execPath, [join(ROOT, "scripts", "build-app.mjs")], { cwd: join(ROOT, "apps", app), stdio: "pipe" });
  }
  await migrateDatabase(databaseUrl.toString(), join(ROOT, "migrations"));
  // Test files share this database and PUT products at fixed ids below 1,000,000; created
  // products draw their ids from the sequence, which starts far above them, so no file's
  // create lands on an id another file writes to.
  const client = new pg.Client({ connectionString: databaseUrl.toString() });
  await client.connect();
  await client.query("select setval(pg_get_serial_sequence('products', 'id'), 1000000000)");
  await client.end();

  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
  await redis.connect();
  await redis.quit();

  const teardown = async () => {
    const admin = new URL(base);
    admin.pathname = "/postgres";
    const client = new pg.Client({ connectionString: admin.toString() });
    await client.connect();
    await client.query(`drop database if exists "${dbName}" with (force)`);
    // Scratch databases a test file made beside the run's own (test/support/scratch-db.ts).
    const scratch = await client.query<{ datname: string }>("select datname from pg_database where starts_with(datname, $1)", [`${dbName}_`]);
    for (const { datname } of scratch.rows) await client.query(`drop database if exists "${datname}" with (force)`);
    await client.end();
    const r = new Redis(redisUrl);
    // Queue keys sit inside the hash tag; cache keys use the same name without it.
    for (const pattern of [`${queuePrefix}*`, `ingest-test-${run}-*`]) {
      let cursor = "0";
      do {
        const [next, keys] = await r.scan(cursor, "MATCH", pattern, "COUNT", 1000);
        if (keys.length) await r.unlink(...keys);
        cursor = next;
      } while (cursor !== "0");
    }
    await r.quit();
  };
  return { databaseUrl: databaseUrl.toString(), redisUrl, runId: run, teardown };
}
