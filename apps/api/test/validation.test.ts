import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request, startApi, storedWrite, testEnv, type Api } from "../../../test/support/harness.js";
import { rawHttp } from "../../../test/support/raw-http.js";

const { prefix } = testEnv("validation");
let api: Api;

beforeAll(async () => {
  api = await startApi(prefix);
});
afterAll(() => api.close());

async function enqueuedCount(): Promise<number> {
  const { registrations, products, bulk } = api.runtime.deps.producer["deps"].queues;
  const counts = await Promise.all([registrations.getJobCountByTypes(), products.getJobCountByTypes(), bulk.getJobCountByTypes()]);
  return counts.reduce((a, b) => a + b, 0);
}

const product = { name: "Camo Onesie", category: "Jackets", default_price: "140.00" };
const long = (n: number) => "x".repeat(n);

function expectProblem(r: { status: number; headers: Headers; body: any }, status: number) {
  expect(r.status).toBe(status);
  expect(r.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(r.body).toMatchObject({ status, type: expect.any(String), title: expect.any(String), detail: expect.any(String) });
  expect(JSON.stringify(r.body)).not.toMatch(/at .*\.(ts|js):\d+/);
}

describe("write validation: bad input gets a clear error and nothing is enqueued", () => {
  const cases: [string, string, string, unknown, string][] = [
    ["unknown field", "POST", "/registrations", { email: "a@b.co", name: "A", admin: true }, "/admin"],
    ["missing email", "POST", "/registrations", { name: "A" }, "/email"],
    ["bad email", "POST", "/registrations", { email: "not-an-email", name: "A" }, "/email"],
    ["email over 254", "POST", "/registrations", { email: `${long(250)}@b.co`, name: "A" }, "/email"],
    ["empty name", "POST", "/registrations", { email: "a@b.co", name: "" }, "/name"],
    ["blank name", "POST", "/registrations", { email: "a@b.co", name: "   " }, "/name"],
    ["name over 255", "POST", "/registrations", { email: "a@b.co", name: long(256) }, "/name"],
    ["unknown plan", "POST", "/registrations", { email: "a@b.co", name: "A", plan: "gold" }, "/plan"],
    ["marketingOptIn not boolean", "POST", "/registrations", { email: "a@b.co", name: "A", marketingOptIn: "yes" }, "/marketingOptIn"],
    ["body is an array", "POST", "/registrations", [{ email: "a@b.co", name: "A" }], "/"],
    ["product unknown field", "POST", "/products", { ...product, colour: "red" }, "/colour"],
    ["product missing category", "POST", "/products", { name: "A", default_price: "1.00" }, "/category"],
    ["product name wrong type", "POST", "/products", { ...product, name: 42 }, "/name"],
    ["product name over 255", "POST", "/products", { ...product, name: long(256) }, "/name"],
    ["description over 10000", "POST", "/products", { ...product, description: long(10_001) }, "/description"],
    ["negative price", "POST", "/products", { ...product, default_price: -1 }, "/default_price"],
    ["negative price string", "POST", "/products", { ...product, default_price: "-1.00" }, "/default_price"],
    ["non-numeric price", "POST", "/products", { ...product, default_price: "abc" }, "/default_price"],
    ["price with 3 decimals", "POST", "/products", { ...product, default_price: "1.234" }, "/default_price"],
    ["numeric price with 3 decimals", "POST", "/products", { ...product, default_price: 1.234 }, "/default_price"],
    [
      "more than 100 features",
      "POST",
      "/products",
      { ...product, features: Array.from({ length: 101 }, (_, i) => ({ feature: `f${i}`, value: "v" })) },
      "/features",
    ],
    ["feature with unknown field", "POST", "/products", { ...product, features: [{ feature: "a", value: "b", x: 1 }] }, "/features/0/x"],
    ["PUT missing fields", "PUT", "/products/5", { name: "only" }, "/category"],
    ["empty PATCH", "PATCH", "/products/5", {}, "/"],
    ["PATCH unknown field", "PATCH", "/products/5", { nope: 1 }, "/nope"],
    ["PATCH bad price", "PATCH", "/products/5", { default_price: "1,00" }, "/default_price"],
  ];

  it.each(cases)("%s → 400 with the field's path", async (_name, method, path, json, errorPath) => {
    const r = await request(api.url, method, path, { json });
    expectProblem(r, 400);
    expect(r.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ path: errorPath })]));
  });

  it("a body that is not JSON → 400", async () => {
    const r = await request(api.url, "POST", "/registrations", { body: "{not json", headers: { "content-type": "application/json" } });
    expectProblem(r, 400);
  });

  it("a wrong content type → 415", async () => {
    const r = await request(api.url, "POST", "/registrations", { body: "email=a@b.co", headers: { "content-type": "application/x-www-form-urlencoded" } });
    expectProblem(r, 415);
    const none = await request(api.url, "PUT", "/products/3", { body: JSON.stringify(product) });
    expectProblem(none, 415);
  });

  it("a body over the limit → 413", async () => {
    const r = await request(api.url, "POST", "/products", { json: { ...product, description: long(120_000) } });
    expectProblem(r, 413);
  });

  it("a malformed product id → 400, before the body is read", async () => {
    for (const id of ["abc", "0", "-1", "1.5", "99999999999", "1e3"]) {
      const r = await request(api.url, "PUT", `/products/${id}`, { body: "not even json", headers: { "content-type": "text/plain" } });
      expectProblem(r, 400);
    }
  });

  it("a malformed Idempotency-Key → 400", async () => {
    for (const key of [long(256), "caf\u00e9"]) {
      const r = await request(api.url, "POST", "/registrations", {
        json: { email: "a@b.co", name: "A" },
        headers: { "idempotency-key": key },
      });
      expectProblem(r, 400);
    }
  });

  it("unknown routes → 404 and wrong methods → 405 with Allow, as problem+json", async () => {
    expectProblem(await request(api.url, "GET", "/nope"), 404);
    const r = await request(api.url, "DELETE", "/registrations");
    expectProblem(r, 405);
    expect(r.headers.get("allow")).toContain("POST");
  });

  it("a malformed path escape → 400 problem+json, not a 500", async () => {
    expectProblem(await request(api.url, "GET", "/jobs/%E0%A4%A"), 400);
    expectProblem(await request(api.url, "PATCH", "/products/%zz", { json: { name: "x" } }), 400);
  });

  it("nothing was enqueued by any of the above", async () => {
    expect(await enqueuedCount()).toBe(0);
  });

  it("valid writes are accepted with 202, Location and the job id, prices normalised", async () => {
    const r = await request(api.url, "POST", "/products", { json: { ...product, default_price: 12.5 } });
    expect(r.status).toBe(202);
    expect(r.body).toEqual({ jobId: expect.stringMatching(/^prd-/), status: "queued", statusUrl: `/jobs/${r.body.jobId}` });
    expect(r.headers.get("location")).toBe(`/jobs/${r.body.jobId}`);
    expect(r.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(Number(r.headers.get("content-length"))).toBe(Buffer.byteLength(r.text));
    expect(r.headers.get("x-content-type-options")).toBe("nosniff");
    const write = await storedWrite(api.runtime.deps.queues, r.body.jobId);
    expect(write?.payload).toEqual({ product: { ...product, default_price: "12.50" } });
    const status = await request(api.url, "GET", `/jobs/${r.body.jobId}`);
    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({ id: r.body.jobId, type: "product.create", state: "queued", attempts: 0 });
  });

  it("GET /jobs/:id of an unknown id → 404; a bad waitMs → 400", async () => {
    expectProblem(await request(api.url, "GET", "/jobs/prd-00000000-0000-4000-8000-000000000000"), 404);
    expectProblem(await request(api.url, "GET", "/jobs/whatever"), 404);
    expectProblem(await request(api.url, "GET", "/jobs/prd-00000000-0000-4000-8000-000000000000?waitMs=20000"), 400);
  });
});

describe("audit findings: each refused at the edge with a problem that says why, nothing enqueued", () => {
  const PRICE_RULE = 'must be a non-negative decimal with at most 2 decimals, like "140.00"';
  const ndjson = (lines: unknown[]) => lines.map((l) => JSON.stringify(l)).join("\n");
  const bulk = (body: string | Buffer) =>
    fetch(`${api.url}/products/bulk`, { method: "POST", body, headers: { "content-type": "application/x-ndjson" } }).then(async (r) => ({
      status: r.status,
      headers: r.headers,
      body: JSON.parse(await r.text()),
    }));
  /** What the queued job of a 202 carries. */
  const payloadOf = async (jobId: string) => (await storedWrite(api.runtime.deps.queues, jobId))?.payload;

  it("strings with U+0000, which PostgreSQL cannot store → 400 naming the field, in JSON bodies and bulk lines", async () => {
    const before = await enqueuedCount();
    const cases: [string, string, unknown, string][] = [
      ["PATCH", "/products/5", { slogan: "x\u0000" }, "/slogan"],
      ["POST", "/registrations", { email: "a@b.co", name: "a\u0000b" }, "/name"],
      ["POST", "/products", { ...product, name: "Camo\u0000" }, "/name"],
      ["PUT", "/products/5", { ...product, description: "\u0000" }, "/description"],
      ["POST", "/products", { ...product, features: [{ feature: "Fabric", value: "Canvas\u0000" }] }, "/features/0/value"],
      ["POST", "/products", { ...product, features: [{ feature: "\u0000Fabric", value: "Canvas" }] }, "/features/0/feature"],
    ];
    for (const [method, path, json, errorPath] of cases) {
      const r = await request(api.url, method, path, { json });
      expectProblem(r, 400);
      expect(r.body.type).toBe("/problems/validation");
      expect(r.body.errors, `${method} ${path} ${errorPath}`).toContainEqual({ path: errorPath, message: "must not contain NUL characters or unpaired surrogates" });
    }
    const lines = await bulk(ndjson([{ op: "patch", id: 5, changes: { slogan: "x\u0000" } }, { op: "create", product: { ...product, category: "\u0000" } }]));
    expectProblem(lines, 400);
    expect(lines.body.errors).toEqual([
      { path: "/lines/1/changes/slogan", message: "must not contain NUL characters or unpaired surrogates" },
      { path: "/lines/2/product/category", message: "must not contain NUL characters or unpaired surrogates" },
    ]);
    expect(await enqueuedCount()).toBe(before);
  });

  it("a price number with more than 2 decimals in its shortest form → 400, not rounded; others are normalised", async () => {
    const before = await enqueuedCount();
    for (const raw of ["0.30000000000000004", "1.10000000001", "5e-324", "1e-7", "1e+21", "140.123", "1.005"]) {
      const r = await request(api.url, "POST", "/products", {
        body: `{"name":"Camo Onesie","category":"Jackets","default_price":${raw}}`,
        headers: { "content-type": "application/json" },
      });
      expectProblem(r, 400);
      expect(r.body.errors, raw).toEqual([{ path: "/default_price", message: PRICE_RULE }]);
    }
    expect(await enqueuedCount()).toBe(before);
    for (const [raw, stored] of [["0.3", "0.30"], ["140", "140.00"], ["12.5", "12.50"], ["1.1", "1.10"]]) {
      const r = await request(api.url, "PATCH", "/products/5", { body: `{"default_price":${raw}}`, headers: { "content-type": "application/json" } });
      expect(r.status, raw).toBe(202);
      expect(await payloadOf(r.body.jobId)).toEqual({ productId: 5, changes: { default_price: stored } });
    }
  });

  it("a JSON body that is valid JSON but not an object → 400 validation, not malformed JSON", async () => {
    const before = await enqueuedCount();
    for (const body of ["null", '"str"', "5", "true", " false "]) {
      for (const [method, path] of [["POST", "/registrations"], ["PATCH", "/products/5"]] as const) {
        const r = await request(api.url, method, path, { body, headers: { "content-type": "application/json" } });
        expectProblem(r, 400);
        expect(r.body.type, body).toBe("/problems/validation");
        expect(r.body.errors).toEqual([{ path: "/", message: "must be object" }]);
      }
    }
    expect(await enqueuedCount()).toBe(before);
  });

  it("validation messages name the rule that was broken, not 'one of the allowed types'", async () => {
    const before = await enqueuedCount();
    const cases: [unknown, string, string][] = [
      [{ ...product, description: long(10_001) }, "/description", "must be at most 10000 characters"],
      [{ ...product, slogan: long(100_000) }, "/slogan", "must be at most 1000 characters"],
      [{ ...product, slogan: 7 }, "/slogan", "must be string or null"],
      [{ ...product, default_price: "-1" }, "/default_price", PRICE_RULE],
      [{ ...product, default_price: -1 }, "/default_price", PRICE_RULE],
      [{ ...product, default_price: "abc" }, "/default_price", PRICE_RULE],
      [{ ...product, default_price: "140.123" }, "/default_price", PRICE_RULE],
      [{ ...product, name: long(256) }, "/name", "must be at most 255 characters"],
    ];
    for (const [json, path, message] of cases) {
      const r = await request(api.url, "POST", "/products", { json });
      expectProblem(r, 400);
      expect(r.body.errors).toEqual([{ path, message }]);
    }
    const plan = await request(api.url, "POST", "/registrations", { json: { email: "a@b.co", name: "A", plan: "gold" } });
    expect(plan.body.errors).toEqual([{ path: "/plan", message: 'must be one of "free", "pro", "team"' }]);
    expect(await enqueuedCount()).toBe(before);
  });

  it("a body that is not valid UTF-8 → 400, for JSON bodies and for bulk lines", async () => {
    const before = await enqueuedCount();
    const latin1 = Buffer.concat([Buffer.from('{"email":"a@b.co","name":"caf'), Buffer.from([0xe9]), Buffer.from('"}')]);
    for (const body of [latin1, Buffer.from([0x7b, 0xc3, 0x28, 0x7d]), Buffer.from('{"email":"a@b.co","name":"\xed\xa0\x80"}', "latin1")]) {
      const res = await fetch(`${api.url}/registrations`, { method: "POST", body, headers: { "content-type": "application/json" } });
      const r = { status: res.status, headers: res.headers, body: JSON.parse(await res.text()) };
      expectProblem(r, 400);
      expect(r.body).toMatchObject({ type: "/problems/invalid-utf8", detail: "The request body is not valid UTF-8." });
    }
    const lines = await bulk(Buffer.concat([Buffer.from(`${ndjson([{ op: "delete", id: 5 }])}\n{"op":"patch","id":5,"changes":{"name":"caf`), Buffer.from([0xe9]), Buffer.from('"}}\n')]));
    expectProblem(lines, 400);
    expect(lines.body).toMatchObject({ detail: "The request body is not valid UTF-8.", errors: [{ path: "/lines/2", message: "is not valid UTF-8" }] });
    expect(await enqueuedCount()).toBe(before);
  });

  it("a Content-Length over the limit → 413 at once from the header, and the connection is closed", async () => {
    const before = await enqueuedCount();
    for (const [path, type] of [["/products", "application/json"], ["/products/bulk", "application/x-ndjson"]]) {
      const r = await rawHttp(api.url, `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nContent-Length: 99999999\r\n\r\n{}`);
      expect(r.status, path).toBe(413);
      expect(r.headers["content-type"]).toMatch(/^application\/problem\+json/);
      expect(r.headers.connection).toBe("close");
      expect(r.body).toMatchObject({ type: "/problems/payload-too-large", status: 413 });
      expect(r.ms).toBeLessThan(1_000);
      expect(await r.closed).toBe(true);
    }
    // Chunked, the size is only known while reading: still a 413.
    const chunk = long(120_000);
    const chunked = await rawHttp(
      api.url,
      `POST /products HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`,
    );
    expect(chunked.status).toBe(413);
    expect(await enqueuedCount()).toBe(before);
  });

  it("a control character in a header → 400 problem+json from the server itself, and the connection is closed", async () => {
    for (const bad of ["\x01", "\x7f"]) {
      const r = await rawHttp(
        api.url,
        Buffer.from(`POST /registrations HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a${bad}b\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`, "latin1"),
      );
      expect(r.status).toBe(400);
      expect(r.headers["content-type"]).toBe("application/problem+json");
      expect(r.headers.connection).toBe("close");
      expect(r.body).toMatchObject({ type: "/problems/bad-request", status: 400, title: "Bad request", detail: expect.stringContaining("header") });
      expect(await r.closed).toBe(true);
    }
    const big = await rawHttp(api.url, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${long(70_000)}\r\n\r\n`);
    expect(big.status).toBe(431);
    expect(big.body).toMatchObject({ type: "/problems/headers-too-large", status: 431 });
    expect((await request(api.url, "GET", "/healthz")).status).toBe(200);
  });

  it("a request too slow for the server's timeouts → 408 problem+json, as Node would answer it", async () => {
    // Node's timeouts are checked every 30 s; raise the parser's error on a live connection instead.
    const accepted = new Promise<Socket>((resolve) => api.server.once("connection", resolve));
    const client = connect(Number(new URL(api.url).port), "127.0.0.1");
    let reply = "";
    client.on("data", (d) => (reply += d));
    client.setTimeout(3_000, () => client.destroy());
    const ended = new Promise((resolve) => client.on("close", resolve));
    api.server.emit("clientError", Object.assign(new Error("Request timeout"), { code: "ERR_HTTP_REQUEST_TIMEOUT" }), await accepted);
    await ended;
    expect(reply).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(reply).toContain("Content-Type: application/problem+json\r\n");
    expect(JSON.parse(reply.slice(reply.indexOf("\r\n\r\n") + 4))).toMatchObject({ type: "/problems/request-timeout", status: 408 });
  });

  it("two Idempotency-Key headers → 400; one key that contains a comma is still one key", async () => {
    const before = await enqueuedCount();
    const body = '{"email":"twokeys@b.co","name":"A"}';
    const send = (keys: string[]) =>
      rawHttp(
        api.url,
        `POST /registrations HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n${keys.map((k) => `Idempotency-Key: ${k}\r\n`).join("")}Content-Length: ${body.length}\r\n\r\n${body}`,
      );
    const twice = await send(["a", "b"]);
    expect(twice.status).toBe(400);
    expect(twice.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(twice.body.errors).toEqual([{ path: "header/Idempotency-Key", message: "must be sent once" }]);
    expect(await enqueuedCount()).toBe(before);
    const once = await send(["a, b"]);
    expect(once.status).toBe(202);
    expect((await send(["a, b"])).body.jobId).toBe(once.body.jobId);
  });
});
