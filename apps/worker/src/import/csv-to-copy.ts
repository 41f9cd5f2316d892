import type { TransformCallback } from "node:stream";
import { Parser, type CsvError } from "csv-parse";
import type { RejectLog } from "./rejects.js";
import { BadField, checkField } from "./field-check.js";
import type { Column, TableSpec } from "./tables.js";

// COPY rows are gathered into strings of about this size before they are pushed on.
const BATCH_CHARS = 64 * 1024;
// A record this long is an unterminated quote swallowing the file; memory stays bounded.
export const MAX_RECORD_CHARS = 1 << 20;
const COPY_SPECIAL = /[\\\t\n\r\0]/;

function crlfInside(fields: string[]): number {
  let n = 0;
  for (const f of fields) {
    if (!f.includes("\r\n")) continue;
    for (let at = f.indexOf("\r\n"); at !== -1; at = f.indexOf("\r\n", at + 2)) n++;
  }
  return n;
}

/** A problem with the file as a whole (header, runaway quote): nothing of it is loaded. */
export class FileFormatError extends Error {}

function escapeCopy(value: string): string | undefined {
  if (value.includes("\0")) return undefined;
  return value.replace(/[\\\t\n\r]/g, (c) => (c === "\\" ? "\\\\" : c === "\t" ? "\\t" : c === "\n" ? "\\n" : "\\r"));
}

/**
 * CSV bytes in, PostgreSQL COPY text out: `line \t field \t field ...` in the staging
 * table's column order. The parse quirks are settled here: BOM, CRLF or LF,
 * quoted fields with commas, doubled quotes and line breaks, stray quotes inside unquoted
 * fields (kept as they are), blank lines (ignored). Each field is checked and normalised
 * for its column (field-check.ts); rows with the wrong number of fields, malformed
 * quoting, a bad value or a NUL character are skipped into the reject log with their
 * line. Parents and repeated ids are checked later, set-based, in SQL.
 */
export class CsvToCopy extends Parser {
  /** Data rows read (not the header, not blank lines), skipped ones included. */
  rows = 0;
  /** Bytes received from the file. */
  received = 0;
  /** Whether every staged id was larger than the one before (then none repeats). */
  increasing = true;
  private lastId = 0;
  private indexes: number[] | undefined;
  private width = 0;
  private lastLine = 0;
  // csv-parse counts a CRLF inside a quoted field as two lines; this many so far.
  private skew = 0;
  private out = "";
  private fatal: Error | undefined;
  private readonly text: boolean[];

  constructor(
    private readonly spec: TableSpec,
    private readonly rejects: RejectLog,
  ) {
    super({
      bom: true,
      record_delimiter: ["\r\n", "\n"],
      relax_column_count: true,
      relax_quotes: true,
      skip_records_with_error: true,
      max_record_size: MAX_RECORD_CHARS,
    });
    this.text = spec.columns.map((c) => c.kind === "text" || c.kind === "text?");
    this.on("skip", (err: CsvError) => this.onSkip(err));
  }

  override _transform(chunk: Buffer, encoding: BufferEncoding, callback: TransformCallback): void {
    this.received += chunk.length;
    super._transform(chunk, encoding, (err?: Error | null) => callback(err ?? this.fatal));
  }

  override _flush(callback: TransformCallback): void {
    super._flush((err?: Error | null) => {
      if (!err && !this.fatal && this.info.bytes < this.received) {
        this.fatal = new FileFormatError(`the file could not be parsed past line ${this.lastLine}`);
      }
      if (!err && !this.fatal && !this.indexes) this.fatal = new FileFormatError("the file is empty: no header row");
      callback(err ?? this.fatal);
    });
  }

  // csv-parse hands each record to push() synchronously while it parses, so info.lines
  // is the line the record ends on; it starts on the line after the previous one.
  override push(record: unknown): boolean {
    if (record === null) {
      if (this.out) super.push(this.out);
      this.out = "";
      return super.push(null);
    }
    const fields = record as string[];
    const start = this.lastLine + 1;
    // Only a record spanning lines can hold a CRLF inside quotes.
    if (this.info.lines - this.skew > start) this.skew += crlfInside(fields);
    this.lastLine = this.info.lines - this.skew;
    if (this.fatal) return true;
    if (!this.indexes) {
      this.readHeader(fields);
      return true;
    }
    if (fields.length !== this.width) {
      if (fields.length === 1 && fields[0] === "") return true;
      this.rows++;
      this.rejects.add("wrong number of fields", start, `expected ${this.width} fields, got ${fields.length}`);
      return true;
    }
    this.rows++;
    const columns = this.spec.columns;
    let line = String(start);
    for (let c = 0; c < columns.length; c++) {
      const column = columns[c] as Column;
      const raw = fields[this.indexes[c] as number] as string;
      const value = checkField(column, raw);
      if (value === null) {
        line += "\t\\N";
        continue;
      }
      if (value instanceof BadField) {
        this.rejects.add(value.reason, start, JSON.stringify(raw.length > 40 ? `${raw.slice(0, 40)}…` : raw));
        return true;
      }
      if (c === 0) this.trackOrder(Number(value));
      // Numbers and booleans come back from checkField with nothing to escape.
      if (this.text[c] && COPY_SPECIAL.test(value)) {
        const escaped = escapeCopy(value);
        if (escaped === undefined) {
          this.rejects.add("NUL character in a field", start, column.name);
          return true;
        }
        line += "\t" + escaped;
      } else {
        line += "\t" + value;
      }
    }
    this.out += line + "\n";
    if (this.out.length >= BATCH_CHARS) {
      super.push(this.out);
      this.out = "";
    }
    return true;
  }

  /** Exports list ids in increasing order; only when one does not can ids repeat. */
  private trackOrder(id: number): void {
    if (id <= this.lastId) this.increasing = false;
    else this.lastId = id;
  }

  private readHeader(fields: string[]): void {
    const names = fields.map((f) => f.trim().toLowerCase());
    const indexes: number[] = [];
    const missing: string[] = [];
    for (const column of this.spec.columns) {
      const at = column.headers.map((h) => names.indexOf(h.toLowerCase())).find((i) => i >= 0);
      if (at === undefined) missing.push(column.headers[0] ?? column.name);
      else indexes.push(at);
    }
    if (missing.length) {
      this.fatal = new FileFormatError(
        `header lacks ${missing.join(", ")} (expected ${this.spec.columns.map((c) => c.headers[0]).join(",")}, got ${fields.join(",")})`,
      );
      return;
    }
    this.indexes = indexes;
    this.width = fields.length;
  }

  private onSkip(err: CsvError): void {
    const start = this.lastLine + 1;
    const end = typeof err.lines === "number" ? err.lines - this.skew : start;
    this.lastLine = Math.max(end, start);
    if (err.code === "CSV_MAX_RECORD_SIZE") {
      this.fatal ??= new FileFormatError(
        `record at line ${start} is over ${MAX_RECORD_CHARS} characters (an unterminated quote?)`,
      );
      return;
    }
    if (!this.indexes) {
      this.fatal ??= new FileFormatError(`malformed header: ${err.message}`);
      return;
    }
    this.rows++;
    this.rejects.add("malformed CSV", start, err.message.replace(/\s+/g, " ").slice(0, 120));
  }
}
