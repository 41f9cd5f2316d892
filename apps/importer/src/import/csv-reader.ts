// csv-parse driven by hand: each record with the lines it covers and its bytes in the file.
import { Parser, type CsvError } from "csv-parse";

/** How the importer reads CSV. */
export const CSV_OPTIONS = {
  bom: true,
  record_delimiter: ["\r\n", "\n"],
  relax_column_count: true,
  relax_quotes: true,
  skip_records_with_error: true,
  // A record this long is an unterminated quote swallowing the file; memory stays bounded.
  max_record_size: 1 << 20,
};

export type ReaderEvents = {
  /** A record: its first and last line, and its bytes [from, to) in the file. */
  record(fields: string[], line: number, lastLine: number, from: number, to: number): void;
  /** A quote still open at the end of the file: its record starts on `line`, at byte `from`. */
  unclosed(line: number, from: number): void;
  /** A record csv-parse refused for another reason. */
  malformed(line: number, message: string): void;
  /** A record longer than max_record_size: the file cannot be read on. */
  tooLong(line: number): void;
};

// csv-parse counts a CRLF inside a quoted field as two lines.
function crlfInside(fields: string[]): number {
  let n = 0;
  for (const f of fields) {
    if (!f.includes("\r\n")) continue;
    for (let at = f.indexOf("\r\n"); at !== -1; at = f.indexOf("\r\n", at + 2)) n++;
  }
  return n;
}

// Thrown through csv-parse to stop an abandoned reader in the middle of a chunk.
const STOP = Symbol("abandoned");

/**
 * Reads the file from a given byte and line on; fed chunk by chunk, it hands over each
 * record synchronously. A new reader can take over from any line (after a runaway quote,
 * the lines that quote swallowed are read again by one): the one it replaces is
 * abandoned in the record event and stops parsing at once, so no byte is parsed twice
 * beyond the swallowed ones. It is csv-parse's Parser used through its transform methods
 * only, never as a stream: the parse API beneath it is not exported on its own.
 */
export class CsvReader extends Parser {
  abandoned = false;
  /** File offset of the end of the last record: where the next one starts. */
  next: number;
  private lastLine: number;
  private skew = 0;

  constructor(
    private readonly events: ReaderEvents,
    private readonly at: { offset: number; line: number } = { offset: 0, line: 1 },
  ) {
    // A byte order mark can only open the file.
    super({ ...CSV_OPTIONS, bom: at.offset === 0 });
    this.next = at.offset;
    this.lastLine = at.line - 1;
    this.on("skip", (err: CsvError) => this.onSkip(err));
  }

  /** The line the last record ended on. */
  get line(): number {
    return this.lastLine;
  }

  /** Parses a chunk now; answers csv-parse's error, if any. */
  feed(chunk: Buffer): Error | undefined {
    let failed: Error | undefined;
    try {
      super._transform(chunk, "utf8", (err?: Error | null) => (failed = err ?? undefined));
    } catch (err) {
      if (err !== STOP) throw err;
    }
    return failed;
  }

  /** The end of the file: parses what is left. */
  finish(): Error | undefined {
    let failed: Error | undefined;
    try {
      super._flush((err?: Error | null) => (failed = err ?? undefined));
    } catch (err) {
      if (err !== STOP) throw err;
    }
    return failed;
  }

  // csv-parse hands each record to push() synchronously while it parses, so info.lines
  // is the line the record ends on and info.bytes the end of its bytes; it starts
  // where the previous one ended.
  override push(record: unknown): boolean {
    if (record === null || this.abandoned) return true;
    const fields = record as string[];
    const start = this.lastLine + 1;
    const from = this.next;
    this.next = this.at.offset + this.info.bytes;
    const last = this.at.line - 1 + this.info.lines - this.skew;
    // Only a record spanning lines can hold a CRLF inside quotes.
    if (last > start) this.skew += crlfInside(fields);
    this.lastLine = this.at.line - 1 + this.info.lines - this.skew;
    this.events.record(fields, start, this.lastLine, from, this.next);
    if (this.abandoned) throw STOP;
    return true;
  }

  private onSkip(err: CsvError): void {
    if (this.abandoned) return;
    const start = this.lastLine + 1;
    if (err.code === "CSV_MAX_RECORD_SIZE") return this.events.tooLong(start);
    if (err.code === "CSV_QUOTE_NOT_CLOSED") return this.events.unclosed(start, this.next);
    const end = typeof err.lines === "number" ? this.at.line - 1 + err.lines - this.skew : start;
    this.lastLine = Math.max(end, start);
    this.events.malformed(start, err.message.replace(/\s+/g, " ").slice(0, 120));
  }
}
