// Imports a folder of catalog CSV files, each file in its own transaction, children waiting for their parents' files.
import type { RedisTarget } from "@ingest/redis";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { invalidateCatalogCache, type CacheOutcome } from "./invalidate-cache.js";
import { emptyResult, loadFile, type FileResult } from "./load-file.js";
import type { ReadCounters } from "./stage-file.js";
import { TABLES, type TableSpec } from "./tables.js";

export type ProgressState = {
  /** The file being read, if any, and those merging meanwhile. */
  reading: string | undefined;
  merging: string[];
  /** Bytes and data rows read so far over all files; bytes of the files whose merge is over. */
  bytes: number;
  rows: number;
  mergedBytes: number;
};

export interface ImportProgress {
  start(plan: { files: { file: string; bytes: number }[]; totalBytes: number }): void;
  update(state: ProgressState): void;
  fileDone(result: FileResult): void;
  stop(): void;
}

type ImportOptions = {
  databaseUrl: string;
  dir: string;
  /** Examples kept per skip reason and file. */
  examples?: number;
  progress?: ImportProgress;
  /** Cache Redis to invalidate at the end; false skips it (tests, no cache). */
  cache: { url: string | RedisTarget; prefix: string } | false;
  /** Skip the row-by-row foreign-key triggers (see merge-file.ts); default: when the role is superuser. */
  trustParents?: boolean;
};

export type ImportSummary = {
  dir: string;
  files: FileResult[];
  /** Data rows read, loaded (inserted, updated or already so) and skipped, over all files. */
  rows: number;
  loaded: number;
  skipped: number;
  failedFiles: number;
  ms: number;
  rowsPerSecond: number;
  trustParents: boolean;
  cache: CacheOutcome;
};

const SESSION = [
  "SET statement_timeout = 0",
  "SET client_min_messages = warning",
  // Hashes and sorts of the merge stay in memory; staging tables mostly in local buffers.
  "SET work_mem = '256MB'",
  "SET temp_buffers = '128MB'",
  // A handful of big statements per file: compiling them costs more than it saves.
  "SET jit = off",
  // A crash loses at most the last files' commits, which a re-run restores.
  "SET synchronous_commit = off",
];

// Files are read one at a time, in this order; each merges on its own connection as
// soon as its parents' files are final, while the next file is read. Parents come
// before children (the wait below relies on it); the largest merges start early.
const READ_ORDER: readonly TableSpec["table"][] = ["products", "styles", "skus", "photos", "features", "related"];

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    const s = await stat(path);
    return s.isFile() ? s.size : undefined;
  } catch {
    return undefined;
  }
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: "ingest-import", connectionTimeoutMillis: 10_000 });
  // A connection lost mid-import surfaces as the failing query's error.
  client.on("error", () => {});
  await client.connect();
  for (const sql of SESSION) await client.query(sql);
  return client;
}

async function isSuperuser(client: pg.Client): Promise<boolean> {
  const { rows } = await client.query<{ su: boolean }>("SELECT rolsuper AS su FROM pg_roles WHERE rolname = current_user");
  return rows[0]?.su === true;
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * Loads the catalog CSV exports found in `dir`, each file in its own transaction;
 * absent files are noted and skipped. Never throws for bad rows or a bad file: those
 * are in the summary. Throws when the folder or the database cannot be used at all.
 */
export async function importCatalog(opts: ImportOptions): Promise<ImportSummary> {
  const started = performance.now();
  const dirStat = await stat(opts.dir).catch(() => undefined);
  if (!dirStat?.isDirectory()) throw new Error(`${opts.dir} is not a directory`);

  const plan = await Promise.all(
    READ_ORDER.map(async (table) => {
      const spec = TABLES.find((t) => t.table === table) as TableSpec;
      const path = join(opts.dir, spec.file);
      return { spec, path, bytes: await sizeOf(path) };
    }),
  );
  const totalBytes = plan.reduce((sum, p) => sum + (p.bytes ?? 0), 0);

  // The first connection answers whether the database can be used at all.
  const first = await connect(opts.databaseUrl);
  let trustParents: boolean;
  try {
    trustParents = opts.trustParents ?? (await isSuperuser(first));
  } catch (err) {
    await first.end().catch(() => {});
    throw err;
  }

  const progress = opts.progress;
  const state: ProgressState = { reading: undefined, merging: [], bytes: 0, rows: 0, mergedBytes: 0 };
  const counters: ReadCounters = { bytes: 0, rows: 0 };
  let readBytes = 0;
  let readRows = 0;
  const report = () => progress?.update({ ...state, bytes: readBytes + counters.bytes, rows: readRows + counters.rows });
  const timer = progress ? setInterval(report, 200) : undefined;
  progress?.start({ files: plan.filter((p) => p.bytes !== undefined).map((p) => ({ file: p.spec.file, bytes: p.bytes ?? 0 })), totalBytes });

  const done = new Map(TABLES.map((t) => [t.table, deferred()]));
  const results = new Map<TableSpec["table"], FileResult>();
  const merges: Promise<void>[] = [];
  let spare: pg.Client | undefined = first;
  try {
    for (const { spec, path, bytes } of plan) {
      const finish = (result: FileResult) => {
        results.set(spec.table, result);
        state.mergedBytes += bytes ?? 0;
        done.get(spec.table)?.resolve();
        if (result.status !== "absent") progress?.fileDone(result);
      };
      if (bytes === undefined) {
        finish(emptyResult(spec, "absent"));
        continue;
      }
      let client: pg.Client;
      try {
        client = spare ?? (await connect(opts.databaseUrl));
        spare = undefined;
      } catch (err) {
        finish({ ...emptyResult(spec, "failed"), error: (err as Error).message });
        continue;
      }
      state.reading = spec.file;
      counters.bytes = counters.rows = 0;
      const read = deferred();
      merges.push(
        loadFile(client, spec, path, { examples: opts.examples ?? 5, trustParents }, {
          counters,
          parentsDone: () => Promise.all(spec.after.map((t) => done.get(t)?.promise)).then(() => {}),
          onRead: () => read.resolve(),
          onMerge: () => state.merging.push(spec.file),
        })
          .then(finish)
          .finally(async () => {
            state.merging = state.merging.filter((f) => f !== spec.file);
            await client.end().catch(() => {});
          }),
      );
      await read.promise;
      readBytes += bytes;
      readRows += counters.rows;
      counters.bytes = counters.rows = 0;
    }
    state.reading = undefined;
    await Promise.all(merges);
  } finally {
    if (timer) clearInterval(timer);
    report();
    progress?.stop();
    if (spare) await spare.end().catch(() => {});
  }

  const cache: CacheOutcome = opts.cache ? await invalidateCatalogCache(opts.cache.url, opts.cache.prefix) : { status: "off" };
  const files = TABLES.map((t) => results.get(t.table) ?? emptyResult(t, "absent"));
  const ms = performance.now() - started;
  const rows = files.reduce((n, f) => n + f.rows, 0);
  return {
    dir: opts.dir,
    files,
    rows,
    loaded: files.reduce((n, f) => n + f.loaded, 0),
    skipped: files.reduce((n, f) => n + (f.status === "loaded" ? f.skipped : 0), 0),
    failedFiles: files.filter((f) => f.status === "failed").length,
    ms,
    rowsPerSecond: rows / Math.max(ms / 1000, 0.001),
    trustParents,
    cache,
  };
}
