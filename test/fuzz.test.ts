import { connect } from "node:net";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request, startApi, testEnv, type Api } from "./support/harness.js";

// A few hundred cases per property here; the long run raises FUZZ_RUNS.
const RUNS = Number(process.env.FUZZ_RUNS ?? 150);
// Up to six requests per case; the long run needs minutes, not the default 30 s.
const TIMEOUT_MS = 30_000 + RUNS * 60;
const { prefix } = testEnv("fuzz");
let api: Api;

beforeAll(async () => {
  api = await startApi(prefix, { RATE_LIMIT_PER_MIN: "0" });
});
afterAll(() => api.close());

const queued = async () => {
  const counts = await Promise.all(Object.values(api.runtime.deps.queues).map((q) => q.getJobCountByTypes()));
  return counts.reduce((a, b) => a + b, 0);
};

// Lone surrogates cannot be URI-encoded; send them as the invalid UTF-8 they would be.
const encode = (s: string) => {
  try {
    return encodeURIComponent(s);
  } catch {
    return "%ED%A0%80";
  }
};

function assertSane(r: { status: number; text: string; headers: Headers }) {
  expect(r.status).toBeLessThan(500);
  expect(r.text).not.toMatch(/\bat [\w.<>]+ \(|node_modules|\.ts:\d+|\.js:\d+/);
  if (r.status >= 400) expect(r.headers.get("content-type")).toMatch(/^application\/problem\+json/);
}

const ROUTES: [string, string][] = [
  ["POST", "/registrations"],
  ["POST", "/products"],
  ["PUT", "/products/7"],
  ["PATCH", "/products/7"],
];

const nasty = fc.oneof(
  fc.string(),
  fc.string({ unit: "binary" }),
  fc.constantFrom("../../etc/passwd", "1; drop table products; --", "' or 1=1 --", "%00", "\u0000", "😀", "\uD800", "1e309", "-0", "__proto__"),
);
const jsonish = fc.jsonValue({ maxDepth: 4 });
const almostProduct = fc.record(
  {
    name: fc.oneof(nasty, fc.integer(), fc.constant(null)),
    category: fc.oneof(nasty, fc.boolean()),
    default_price: fc.oneof(fc.double(), fc.string(), fc.integer(), fc.constant("12.345")),
    features: fc.oneof(fc.array(fc.record({ feature: nasty, value: fc.oneof(nasty, fc.constant(null)) }), { maxLength: 3 }), jsonish),
    extra: jsonish,
  },
  { requiredKeys: [] },
);

describe("fuzzing the write routes: never a 5xx, never a stack trace, nothing enqueued for a 4xx", { timeout: TIMEOUT_MS }, () => {
  it("random JSON bodies", async () => {
    const before = await queued();
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ROUTES), fc.oneof(jsonish, almostProduct), async ([method, path], body) => {
        const r = await request(api.url, method, path, { json: body });
        assertSane(r);
        if (r.status === 202) accepted++;
      }),
      { numRuns: RUNS },
    );
    expect(await queued()).toBe(before + accepted);
  });

  it("raw bytes, wrong and duplicate content types, huge and deeply nested bodies", async () => {
    const before = await queued();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...ROUTES),
        fc.oneof(fc.string({ unit: "binary" }), fc.string(), fc.constant("[".repeat(5_000)), fc.constant(`{"a":${"[".repeat(20_000)}`)),
        fc.constantFrom("application/json", "text/plain", "application/json; charset=latin1", "application/json, text/html", "", "application/x-ndjson"),
        async ([method, path], body, type) => {
          const r = await request(api.url, method, path, { body, headers: type ? { "content-type": type } : {} });
          assertSane(r);
          expect(r.status).not.toBe(202);
        },
      ),
      { numRuns: RUNS },
    );
    expect(await queued()).toBe(before);
  });

  it("ids, query strings and Idempotency-Keys full of traversal, SQL and unicode", async () => {
    await fc.assert(
      fc.asyncProperty(nasty, nasty, async (id, query) => {
        for (const r of [
          await request(api.url, "GET", `/jobs/${encode(id)}?waitMs=${encode(query)}`),
          await request(api.url, "DELETE", `/products/${encode(id)}`),
          await request(api.url, "GET", `/products/${encode(id)}`),
          await request(api.url, "GET", `/products/${encode(id)}/styles`),
          await request(api.url, "GET", `/products?page=${encode(query)}&count=${encode(id)}`),
          await request(api.url, "POST", "/registrations", {
            json: { email: "a@b.co", name: "x" },
            headers: { "idempotency-key": Buffer.from(query).toString("latin1").replace(/[\r\n]/g, "") || "k" },
          }).catch(() => ({ status: 400, text: "", headers: new Headers({ "content-type": "application/problem+json" }) })),
        ]) {
          assertSane(r);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("header abuse on the raw socket: bad Content-Length, duplicates, oversized headers; the server stays up", async () => {
    const { port } = new URL(api.url);
    const raw = (payload: string) =>
      new Promise<string>((resolve) => {
        const socket = connect(Number(port), "127.0.0.1");
        let out = "";
        socket.on("data", (d) => (out += d));
        socket.on("error", () => resolve(out));
        socket.on("close", () => resolve(out));
        socket.setTimeout(3_000, () => socket.destroy());
        socket.end(payload);
      });
    const body = '{"email":"a@b.co","name":"x"}';
    const cases = [
      `POST /registrations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\n${body}`,
      `POST /registrations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: -1\r\n\r\n${body}`,
      `POST /registrations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999999\r\n\r\n${body}`,
      `POST /registrations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Big: ${"a".repeat(70_000)}\r\n\r\n`,
      `POST /registrations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nzz\r\n`,
      `GARBAGE\r\n\r\n`,
    ];
    for (const c of cases) {
      const reply = await raw(c);
      expect(reply).not.toMatch(/^HTTP\/1\.1 5\d\d/);
      expect(reply).not.toMatch(/\.ts:\d+|node_modules/);
    }
    expect((await request(api.url, "GET", "/healthz")).status).toBe(200);
  });
});
