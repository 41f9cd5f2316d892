// The SQL of staging and merging a file: staging table, COPY, orphan and repeat rejects, upsert.
import { stageType } from "./field-check.js";
import type { TableSpec } from "./tables.js";

// SQL for one file. COPY fills a temporary table typed like the target (every value was
// checked while parsing); set-based statements then drop the rows whose parent is missing
// and the repeated ids, and upsert the rest. Identifiers come from TABLES, never from input.

const stage = (spec: TableSpec) => `pg_temp.import_${spec.table}`;
const names = (spec: TableSpec) => spec.columns.map((c) => c.name);
const dataNames = (spec: TableSpec) => names(spec).filter((n) => n !== "id");

export function createStageSql(spec: TableSpec): string {
  const columns = spec.columns.map((c) => `${c.name} ${stageType(c)}`).join(", ");
  return `CREATE TEMP TABLE import_${spec.table} (line integer NOT NULL, ${columns}) ON COMMIT DROP`;
}

export const copySql = (spec: TableSpec) => `COPY ${stage(spec)} (line, ${names(spec).join(", ")}) FROM STDIN`;

export const analyzeSql = (spec: TableSpec) => `ANALYZE ${stage(spec)}`;

export const missingParentReason = (spec: TableSpec) => `missing parent ${spec.parent?.label}`;
export const DUPLICATE_REASON = "repeated id (the last line with it wins)";

/** Rows answered by the reject statements: the first `keep` lines, each with the total. */
export type RejectRow = { line: number; detail: string; n: string };

/** Locks the parents the staged rows point at, so none can be deleted before commit. */
export function lockParentsSql(spec: TableSpec): string | undefined {
  const p = spec.parent;
  if (!p) return undefined;
  return `SELECT count(*) FROM (
  SELECT 1 FROM ${p.table} p WHERE p.id IN (SELECT ${p.column} FROM ${stage(spec)}) FOR KEY SHARE OF p
) locked`;
}

/** Removes the staged rows whose parent does not exist, answering the first few. */
export function dropOrphansSql(spec: TableSpec, keep: number): string | undefined {
  const p = spec.parent;
  if (!p) return undefined;
  return `WITH gone AS (
  DELETE FROM ${stage(spec)} s WHERE NOT EXISTS (SELECT 1 FROM ${p.table} p WHERE p.id = s.${p.column})
  RETURNING s.line, s.${p.column} AS parent
)
SELECT line, '${p.column} ' || parent AS detail, count(*) OVER () AS n FROM gone ORDER BY line LIMIT ${keep}`;
}

/** Removes every staged row whose id a later line repeats, answering the first few. */
export function dropRepeatsSql(spec: TableSpec, keep: number): string {
  return `WITH gone AS (
  DELETE FROM ${stage(spec)} s USING ${stage(spec)} later WHERE later.id = s.id AND later.line > s.line
  RETURNING s.line, s.id
)
SELECT line, 'id ' || id || ', also on a later line' AS detail, count(*) OVER () AS n FROM gone ORDER BY line LIMIT ${keep}`;
}

/** Rewrites existing rows whose values differ; unchanged rows are not touched. */
export function updateSql(spec: TableSpec): string {
  const data = dataNames(spec);
  const touch = spec.table === "products" ? ", updated_at = now()" : "";
  return `UPDATE ${spec.table} x SET ${data.map((n) => `${n} = s.${n}`).join(", ")}${touch}
FROM ${stage(spec)} s
WHERE x.id = s.id AND (${data.map((n) => `x.${n}`).join(", ")}) IS DISTINCT FROM (${data.map((n) => `s.${n}`).join(", ")})`;
}

/** Inserts the rows whose id is new. */
export function insertSql(spec: TableSpec): string {
  const cols = names(spec).join(", ");
  return `INSERT INTO ${spec.table} (${cols})
SELECT ${cols} FROM ${stage(spec)} s WHERE NOT EXISTS (SELECT 1 FROM ${spec.table} x WHERE x.id = s.id)`;
}

/**
 * Moves the table's identity sequence past the ids this file loaded, never backwards.
 * Only the loaded ids count, not the table's largest: a product a client PUT at a high
 * id must not drag the sequence up (to its limit at 2147483647); creates skip such ids.
 */
export function advanceSequenceSql(spec: TableSpec): string {
  return `SELECT setval(seq, max_id) FROM (
  SELECT pg_get_serial_sequence('${spec.table}', 'id') AS seq, (SELECT max(id) FROM ${stage(spec)}) AS max_id
) s
WHERE max_id IS NOT NULL AND max_id > coalesce(pg_sequence_last_value(seq::regclass), 0)`;
}
