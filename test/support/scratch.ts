// A test file's own database for imports, and temporary folders of CSV files.
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type pg from "pg";
import { createScratchDb } from "./scratch-db.js";

export const ROOT = join(import.meta.dirname, "..", "..");

export type Scratch = {
  url: string;
  query: <R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]) => Promise<R[]>;
  drop: () => Promise<void>;
};

/**
 * A database of the test file's own, made from the real migrations: imports write
 * whole tables, which must not meet the rows other test files write meanwhile.
 */
export async function createScratchDatabase(label: string, opts: { encoding?: "LATIN1" } = {}): Promise<Scratch> {
  const db = await createScratchDb(`${label}_${randomBytes(3).toString("hex")}`, opts);
  return {
    url: db.url,
    query: async (sql, params) => (await db.pool.query(sql, params)).rows,
    drop: db.drop,
  };
}

export type TempDir = { path: string; write: (files: Record<string, string>) => Promise<string>; remove: () => Promise<void> };

/** A temporary folder; `write` makes a fresh subfolder holding the given files. */
export async function createTempDir(label: string): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), `ingest-${label}-`));
  let n = 0;
  return {
    path,
    write: async (files) => {
      const dir = join(path, String(++n));
      await mkdir(dir);
      for (const [file, text] of Object.entries(files)) await writeFile(join(dir, file), text);
      return dir;
    },
    remove: () => rm(path, { recursive: true, force: true }),
  };
}
