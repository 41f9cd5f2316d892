// Streams one CSV file into a temporary staging table with COPY.
import { createReadStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { CsvToCopy } from "./csv-to-copy.js";
import { analyzeSql, copySql, createStageSql } from "./merge-sql.js";
import type { RejectLog } from "./rejects.js";
import type { TableSpec } from "./tables.js";

export type Staged = {
  /** Data rows read (header and blank lines not counted), skipped ones included. */
  rows: number;
  /** Rows in the staging table: those that passed the field checks. */
  staged: number;
  /** Ids only ever grew along the file, so none repeats. */
  increasing: boolean;
};

/** Live counters of the file being read, for progress. */
export type ReadCounters = { bytes: number; rows: number };

/**
 * Opens the file's transaction and streams the file into a temporary table:
 * read → csv-parse + field checks → COPY. Memory stays flat whatever the size.
 * On failure the caller rolls back; nothing of the file is applied.
 */
export async function stageFile(
  client: pg.ClientBase,
  spec: TableSpec,
  path: string,
  rejects: RejectLog,
  counters: ReadCounters,
): Promise<Staged> {
  const encoder = new CsvToCopy(spec, rejects);
  const tick = setInterval(() => {
    counters.bytes = encoder.received;
    counters.rows = encoder.rows;
  }, 100);
  try {
    await client.query("BEGIN");
    await client.query(createStageSql(spec));
    const copy = client.query(copyFrom(copySql(spec)));
    await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), encoder, copy);
    await client.query(analyzeSql(spec));
    return { rows: encoder.rows, staged: copy.rowCount, increasing: encoder.increasing };
  } finally {
    clearInterval(tick);
    counters.bytes = encoder.received;
    counters.rows = encoder.rows;
  }
}
