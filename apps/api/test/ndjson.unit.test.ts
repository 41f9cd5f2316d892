import { Readable } from "node:stream";
import type { Request } from "express";
import { describe, expect, it } from "vitest";
import { readNdjson } from "../src/middleware/ndjson.js";

const limits = { maxBytes: 1_000, maxLineBytes: 100, maxLines: 10 };
const body = (...chunks: (string | Buffer)[]) => Readable.from(chunks.map((c) => (typeof c === "string" ? Buffer.from(c) : c))) as unknown as Request;
async function lines(req: Request, l = limits) {
  const seen: [number, string][] = [];
  const digest = await readNdjson(req, l, (text, n) => seen.push([n, text]));
  return { seen, digest };
}

describe("readNdjson", () => {
  it("splits on LF across chunk boundaries, drops CR, skips blank lines but counts them, keeps a character split across chunks whole", async () => {
    const euro = Buffer.from("€");
    const { seen } = await lines(body('{"a":1}\r\n\n{"b":"', euro.subarray(0, 1), euro.subarray(1), '"}\n{"c"', ':3}'));
    expect(seen).toEqual([
      [1, '{"a":1}'],
      [3, '{"b":"€"}'],
      [4, '{"c":3}'],
    ]);
  });

  it("gives the same digest for the same bytes however they are chunked", async () => {
    const a = await lines(body('{"a":1}\n{"b":2}\n'));
    const b = await lines(body('{"a":', '1}\n{"b"', ":2}\n"));
    expect(a.digest).toBe(b.digest);
  });

  it("stops with 413 past the line, line-length or byte limits", async () => {
    await expect(lines(body("{}\n".repeat(11)))).rejects.toMatchObject({ status: 413 });
    await expect(lines(body(`{"x":"${"y".repeat(120)}"}\n`))).rejects.toMatchObject({ status: 413 });
    await expect(lines(body("x".repeat(60), "y".repeat(60)))).rejects.toMatchObject({ status: 413 });
    await expect(lines(body("{}\n".repeat(9)), { ...limits, maxBytes: 20 })).rejects.toMatchObject({ status: 413 });
  });

  it("a body cut off mid-way is a 400, not a server error", async () => {
    const broken = new Readable({
      read() {
        this.push(Buffer.from('{"a":1}\n{"b"'));
        this.destroy(Object.assign(new Error("aborted"), { code: "ECONNRESET" }));
      },
    }) as unknown as Request;
    await expect(lines(broken)).rejects.toMatchObject({ status: 400 });
  });
});
