// Buffered writes of rows to one CSV file, waiting when the stream is full.
import { createWriteStream, type WriteStream } from "node:fs";
import { once } from "node:events";

const FLUSH_AT = 1 << 20;

/**
 * Buffered writes to one CSV file. Rows are gathered into ~1 MB strings before each
 * write, and `drain()` waits while the stream's buffer is full, so memory stays flat
 * however many rows are written.
 */
export class CsvSink {
  private readonly stream: WriteStream;
  private buffer = "";
  private blocked = false;
  private failure: Error | undefined;
  rows = 0;
  lines = 1;

  constructor(path: string, header: string, private readonly eol: string) {
    this.stream = createWriteStream(path, { highWaterMark: FLUSH_AT });
    this.stream.on("error", (err) => (this.failure = err));
    this.buffer = header + eol;
  }

  /** One data row, already in CSV syntax without its line ending. */
  row(text: string, extraLines = 0): void {
    this.buffer += text + this.eol;
    this.rows++;
    this.lines += 1 + extraLines;
    if (this.buffer.length >= FLUSH_AT) this.flush();
  }

  /** The line number the next row starts on. */
  get nextLine(): number {
    return this.lines + 1;
  }

  private flush(): void {
    if (!this.buffer) return;
    if (!this.stream.write(this.buffer)) this.blocked = true;
    this.buffer = "";
  }

  async drain(): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.blocked) return;
    await once(this.stream, "drain");
    this.blocked = false;
  }

  /** Bytes written, once closed. */
  get bytes(): number {
    return this.stream.bytesWritten;
  }

  async close(): Promise<void> {
    this.flush();
    if (this.failure) throw this.failure;
    this.stream.end();
    await once(this.stream, "finish");
    if (this.failure) throw this.failure;
  }
}
