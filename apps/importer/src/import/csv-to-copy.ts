// Turns a catalog CSV into PostgreSQL COPY text, sending bad rows to the reject log.
import { Transform, type TransformCallback } from "node:stream";
import { CSV_OPTIONS, CsvReader, type ReaderEvents } from "./csv-reader.js";
import { BadField, checkField } from "./field-check.js";
import type { RejectLog } from "./rejects.js";
import { openQuoteField, quotedSpan, RUNAWAY_REASON } from "./runaway-quote.js";
import type { Column, TableSpec } from "./tables.js";

// COPY rows are gathered into strings of about this size before they are pushed on.
const BATCH_CHARS = 64 * 1024;
const MAX_RECORD_CHARS = CSV_OPTIONS.max_record_size;
const COPY_SPECIAL = /[\\\t\n\r\0]/;

/** A problem with the file as a whole (header, runaway quote): nothing of it is loaded. */
class FileFormatError extends Error {}

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
 * line. A quote left open swallows the lines after it into one record: that line is
 * skipped and the file is read again from the next line on (runaway-quote.ts), so every
 * line is loaded or listed. Parents and repeated ids are checked later, set-based, in SQL.
 */
export class CsvToCopy extends Transform {
  /** Data rows read (not the header, not blank lines), skipped ones included. */
  rows = 0;
  /** Bytes received from the file. */
  received = 0;
  /** Whether every staged id was larger than the one before (then none repeats). */
  increasing = true;
  private lastId = 0;
  private indexes: number[] | undefined;
  private width = 0;
  private headerNames: string[] = [];
  private out = "";
  private fatal: Error | undefined;
  private readonly text: boolean[];
  private readonly events: ReaderEvents;
  private reader: CsvReader;
  // Where a new reader takes over after a runaway quote.
  private restartAt: { offset: number; line: number } | undefined;
  // The file's bytes from the start of the record being read on, and the file offset
  // where they start: a record spanning lines is looked at again, and a new reader
  // reads again what the old one swallowed.
  private tail: Buffer = Buffer.alloc(0);
  private tailStart = 0;

  constructor(
    private readonly spec: TableSpec,
    private readonly rejects: RejectLog,
  ) {
    super({ readableObjectMode: true });
    this.text = spec.columns.map((c) => c.kind === "text" || c.kind === "text?");
    this.events = {
      record: (fields, line, lastLine, from, to) => this.onRecord(fields, line, lastLine, from, to),
      unclosed: (line, from) => (this.indexes ? this.runaway(line, from) : this.failHeader("a quote is not closed")),
      malformed: (line, message) => {
        if (!this.indexes) return this.failHeader(message);
        this.rows++;
        this.rejects.add("malformed CSV", line, message);
      },
      tooLong: (line) => {
        this.fatal ??= new FileFormatError(`record at line ${line} is over ${MAX_RECORD_CHARS} characters (an unterminated quote?)`);
      },
    };
    this.reader = new CsvReader(this.events);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const chunkStart = this.received;
    this.received += chunk.length;
    if (this.reader.next >= chunkStart) {
      this.tail = chunk;
      this.tailStart = chunkStart;
    } else {
      this.tail = Buffer.concat([this.tail.subarray(this.reader.next - this.tailStart), chunk]);
      this.tailStart = this.reader.next;
    }
    const err = this.restarted(this.reader.feed(chunk), false);
    callback(err ?? this.fatal);
  }

  override _flush(callback: TransformCallback): void {
    const err = this.restarted(this.reader.finish(), true);
    if (!err && !this.fatal && this.reader.next < this.received) {
      this.fatal = new FileFormatError(`the file could not be parsed past line ${this.reader.line}`);
    }
    if (!err && !this.fatal && !this.indexes) this.fatal = new FileFormatError("the file is empty: no header row");
    if (this.out) this.push(this.out);
    this.out = "";
    callback(err ?? this.fatal);
  }

  /** After a runaway quote, new readers take over until one reads to the end of what came. */
  private restarted(err: Error | undefined, end: boolean): Error | undefined {
    while (!err && !this.fatal && this.restartAt) {
      const at = this.restartAt;
      this.restartAt = undefined;
      this.reader = new CsvReader(this.events, at);
      err = this.reader.feed(this.tail.subarray(at.offset - this.tailStart));
      if (!err && end) err = this.reader.finish();
    }
    return err;
  }

  private onRecord(fields: string[], line: number, lastLine: number, from: number, to: number): void {
    if (this.fatal) return;
    if (!this.indexes) {
      this.readHeader(fields);
      return;
    }
    // A record spanning lines that is not a sound row: a quote ran away with the lines.
    if (lastLine > line && (fields.length !== this.width || quotedSpan(this.bytes(from, to))?.broken)) {
      this.runaway(line, from);
      return;
    }
    this.row(fields, line);
  }

  /** One record of the file, starting on `line`: checked, then staged or skipped. */
  private row(fields: string[], start: number): void {
    if (fields.length !== this.width) {
      if (fields.length === 1 && fields[0] === "") return;
      this.rows++;
      this.rejects.add("wrong number of fields", start, `expected ${this.width} fields, got ${fields.length}`);
      return;
    }
    this.rows++;
    const columns = this.spec.columns;
    let line = String(start);
    for (let c = 0; c < columns.length; c++) {
      const column = columns[c] as Column;
      const raw = fields[this.indexes![c] as number] as string;
      const value = checkField(column, raw);
      if (value === null) {
        line += "\t\\N";
        continue;
      }
      if (value instanceof BadField) {
        this.rejects.add(value.reason, start, JSON.stringify(raw.length > 40 ? `${raw.slice(0, 40)}…` : raw));
        return;
      }
      if (c === 0) this.trackOrder(Number(value));
      // Numbers and booleans come back from checkField with nothing to escape.
      if (this.text[c] && COPY_SPECIAL.test(value)) {
        const escaped = escapeCopy(value);
        if (escaped === undefined) {
          this.rejects.add("NUL character in a field", start, column.name);
          return;
        }
        line += "\t" + escaped;
      } else {
        line += "\t" + value;
      }
    }
    this.out += line + "\n";
    if (this.out.length >= BATCH_CHARS) {
      this.push(this.out);
      this.out = "";
    }
  }

  /**
   * The record starting on `line` (at byte `from`) is a quote that ran away with the
   * lines after it: that line is skipped, naming the column whose quote it is, and a
   * new reader reads the file again from the next line.
   */
  private runaway(line: number, from: number): void {
    this.reader.abandoned = true;
    const start = from - this.tailStart;
    const eol = this.tail.indexOf(10, start);
    const text = this.tail.subarray(start, eol === -1 ? this.tail.length : eol).toString().replace(/\r$/, "");
    this.rows++;
    const field = openQuoteField(text);
    this.rejects.add(RUNAWAY_REASON, line, (field !== undefined && this.headerNames[field]) || `field ${(field ?? 0) + 1}`);
    // On the last line, the next reader starts at the end and only settles the count.
    this.restartAt = { offset: eol === -1 ? this.tailStart + this.tail.length : this.tailStart + eol + 1, line: line + 1 };
  }

  /** The file's bytes [from, to) as text; the tail holds them while their record is read. */
  private bytes(from: number, to: number): string {
    return this.tail.subarray(from - this.tailStart, to - this.tailStart).toString();
  }

  private failHeader(message: string): void {
    this.fatal ??= new FileFormatError(`malformed header: ${message}`);
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
    this.headerNames = fields.map((f) => f.trim());
  }
}
