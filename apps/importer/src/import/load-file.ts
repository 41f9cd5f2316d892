// Loads one CSV file atomically: stage, wait for the parents' files, merge, commit, analyze.
import type pg from "pg";
import { analyzeTable } from "./analyze-table.js";
import { mergeFile } from "./merge-file.js";
import { RejectLog, type RejectGroup } from "./rejects.js";
import { stageFile, type ReadCounters } from "./stage-file.js";
import type { TableSpec } from "./tables.js";

export type FileResult = {
  file: string;
  table: TableSpec["table"];
  status: "loaded" | "absent" | "failed";
  /** Data rows read from the file (header and blank lines not counted). */
  rows: number;
  /** Rows now in the table as the file has them: inserted + updated + unchanged. */
  loaded: number;
  inserted: number;
  updated: number;
  unchanged: number;
  skipped: number;
  rejects: RejectGroup[];
  error?: string;
  /** Reading into the staging table; validating and merging (after waiting for parents). */
  readMs: number;
  mergeMs: number;
  /** ANALYZE of the table after its rows were committed; analyzeError when it gave no statistics. */
  analyzed: boolean;
  analyzeMs: number;
  analyzeError?: string;
};

export const emptyResult = (spec: TableSpec, status: FileResult["status"]): FileResult => ({
  file: spec.file,
  table: spec.table,
  status,
  rows: 0,
  loaded: 0,
  inserted: 0,
  updated: 0,
  unchanged: 0,
  skipped: 0,
  rejects: [],
  readMs: 0,
  mergeMs: 0,
  analyzed: false,
  analyzeMs: 0,
});

type LoadHooks = {
  counters: ReadCounters;
  /** Resolves once the tables this file points at are final (loaded, failed or absent). */
  parentsDone: () => Promise<void>;
  /** Called when reading is over: the next file may be read while this one merges. */
  onRead: () => void;
  onMerge: () => void;
};

/**
 * One file, atomically: its transaction stages every row, waits for the parents' files,
 * then merges and commits. Any failure rolls the whole file back and is reported in
 * the result; it never throws. Once committed, the table is analyzed.
 */
export async function loadFile(
  client: pg.ClientBase,
  spec: TableSpec,
  path: string,
  opts: { examples: number; trustParents: boolean },
  hooks: LoadHooks,
): Promise<FileResult> {
  const result = emptyResult(spec, "loaded");
  const rejects = new RejectLog(opts.examples);
  let started = performance.now();
  let reading = true;
  try {
    const staged = await stageFile(client, spec, path, rejects, hooks.counters);
    result.rows = staged.rows;
    result.readMs = performance.now() - started;
    reading = false;
    hooks.onRead();
    await hooks.parentsDone();
    hooks.onMerge();
    started = performance.now();
    Object.assign(result, await mergeFile(client, spec, staged, rejects, opts));
    result.mergeMs = performance.now() - started;
    const analyzed = await analyzeTable(client, spec);
    result.analyzed = analyzed.ok;
    result.analyzeMs = analyzed.ms;
    if (!analyzed.ok) result.analyzeError = analyzed.error;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    result.status = "failed";
    result.error = (err as Error).message;
    if (reading) {
      result.rows = hooks.counters.rows;
      result.readMs = performance.now() - started;
      hooks.onRead();
    } else {
      result.mergeMs = performance.now() - started;
    }
  }
  result.rejects = rejects.list();
  result.skipped = rejects.total;
  return result;
}
