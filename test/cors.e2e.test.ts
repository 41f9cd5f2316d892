// CORS seen from outside: preflights and actual requests with an Origin, on the real app.
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadEnv } from "../apps/api/src/env.js";
import { seedCatalog } from "./support/catalog-fixtures.js";
import { request, startApi, testEnv, waitFor, type Api, type Reply } from "./support/harness.js";
import { createScratchDb, type ScratchDb } from "./support/scratch-db.js";

const { prefix } = testEnv("cors");
const SHOP = "https://shop.example";
const TOOL = "http://localhost:5173";
const STRANGER = "https://evil.example";
const EXPOSED = ["Location", "ETag", "X-Cache", "Retry-After", "X-Request-Id"];

let scratch: ScratchDb;
const apis: Api[] = [];
beforeAll(async () => {
  scratch = await createScratchDb("cors");
  await seedCatalog(scratch.db);
});
afterAll(async () => {
  await Promise.all(apis.map((a) => a.close()));
  await scratch?.drop();
});

let n = 0;
async function api(env: Record<string, string>): Promise<Api> {
  const started = await startApi(`${prefix.slice(0, -1)}-${++n}}`, { DATABASE_URL: scratch.url, RATE_LIMIT_PER_MIN: "0", ...env });
  apis.push(started);
  return started;
}
const registration = (tag: string) => ({ email: `cors-${tag}-${Date.now()}-${n}@example.com`, name: "Ada" });
const preflight = (a: Api, path: string, origin: string, method = "POST", headers = "authorization,content-type,idempotency-key") =>
  request(a.url, "OPTIONS", path, {
    headers: { origin, "access-control-request-method": method, "access-control-request-headers": headers },
  });
const corsHeaders = (r: Reply) => [...r.headers.keys()].filter((k) => k.startsWith("access-control-"));
const listed = (r: Reply, name: string) => (r.headers.get(name) ?? "").split(",").map((s) => s.trim().toLowerCase());

function expectAllowed(r: Reply, origin: string) {
  expect(r.headers.get("access-control-allow-origin"), `${r.status} ${r.text}`).toBe(origin);
  if (origin !== "*") expect(listed(r, "vary")).toContain("origin");
  expect(r.headers.get("access-control-allow-credentials")).toBeNull();
}

describe("CORS_ORIGINS unset", () => {
  it("answers no CORS header at all, to preflights or requests with an Origin", async () => {
    const a = await api({});
    const get = await request(a.url, "GET", "/products/1", { headers: { origin: SHOP } });
    expect(get.status).toBe(200);
    expect(corsHeaders(get)).toEqual([]);
    const pre = await preflight(a, "/registrations", SHOP);
    expect(pre.status).toBe(405);
    expect(corsHeaders(pre)).toEqual([]);
  });
});

describe("CORS_ORIGINS as a list", () => {
  let a: Api;
  beforeAll(async () => {
    a = await api({ CORS_ORIGINS: `${SHOP}, ${TOOL}` });
  });

  it("a preflight of a write from a listed origin is 204 with the methods, request headers and max age", async () => {
    for (const origin of [SHOP, TOOL]) {
      const r = await preflight(a, "/registrations", origin);
      expect(r.status).toBe(204);
      expect(r.text).toBe("");
      expectAllowed(r, origin);
      expect(listed(r, "access-control-allow-methods")).toEqual(expect.arrayContaining(["post", "put", "patch", "delete", "get"]));
      expect(listed(r, "access-control-allow-headers")).toEqual(expect.arrayContaining(["authorization", "idempotency-key", "content-type"]));
      expect(Number(r.headers.get("access-control-max-age"))).toBeGreaterThan(0);
      expect(r.headers.get("x-request-id")).toBeTruthy();
    }
    const patch = await preflight(a, "/products/1", SHOP, "PATCH");
    expect(patch.status).toBe(204);
    expectAllowed(patch, SHOP);
  });

  it("an origin not listed gets no Access-Control-Allow-Origin, to a preflight or a request, so its browser refuses the answer", async () => {
    const pre = await preflight(a, "/registrations", STRANGER);
    expect(pre.headers.get("access-control-allow-origin")).toBeNull();
    const get = await request(a.url, "GET", "/products/1", { headers: { origin: STRANGER } });
    expect(get.status).toBe(200);
    expect(get.headers.get("access-control-allow-origin")).toBeNull();
    // Shared caches keep one answer per origin.
    expect(listed(get, "vary")).toContain("origin");
    // A listed origin differing only by a trailing slash or scheme is another origin.
    for (const near of [`${SHOP}/`, "http://shop.example", "https://shop.example:8443"]) {
      const r = await request(a.url, "GET", "/products/1", { headers: { origin: near } });
      expect(r.headers.get("access-control-allow-origin"), near).toBeNull();
    }
  });

  it("reads from a listed origin carry Allow-Origin and expose ETag, X-Cache and X-Request-Id; a 304 too", async () => {
    const r = await request(a.url, "GET", "/products/1/styles", { headers: { origin: SHOP } });
    expect(r.status).toBe(200);
    expectAllowed(r, SHOP);
    expect(listed(r, "access-control-expose-headers")).toEqual(expect.arrayContaining(EXPOSED.map((h) => h.toLowerCase())));
    const again = await request(a.url, "GET", "/products/1/styles", { headers: { origin: SHOP, "if-none-match": r.headers.get("etag")! } });
    expect(again.status).toBe(304);
    expectAllowed(again, SHOP);
  });

  it("a write from a listed origin is 202 with Allow-Origin and Location exposed", async () => {
    const r = await request(a.url, "POST", "/registrations", { json: registration("w"), headers: { origin: SHOP, "idempotency-key": `cors-${Date.now()}` } });
    expect(r.status, r.text).toBe(202);
    expectAllowed(r, SHOP);
    expect(r.headers.get("location")).toMatch(/^\/jobs\//);
    expect(listed(r, "access-control-expose-headers")).toContain("location");
  });

  it("errors carry the CORS headers too: 400, 404, 405, 413, 415 problem+json", async () => {
    const origin = { origin: SHOP };
    const replies = [
      await request(a.url, "POST", "/registrations", { json: { email: "nope" }, headers: origin }),
      await request(a.url, "GET", "/products/424242", { headers: origin }),
      await request(a.url, "GET", "/products/x", { headers: origin }),
      await request(a.url, "POST", "/products/1/styles", { json: {}, headers: origin }),
      await request(a.url, "POST", "/registrations", { body: "x".repeat(200_000), headers: { ...origin, "content-type": "application/json" } }),
      await request(a.url, "POST", "/registrations", { body: "a=b", headers: { ...origin, "content-type": "application/x-www-form-urlencoded" } }),
    ];
    expect(replies.map((r) => r.status)).toEqual([400, 404, 400, 405, 413, 415]);
    for (const r of replies) {
      expect(r.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expectAllowed(r, SHOP);
    }
  });

  it("a 503 while draining carries the CORS headers and Retry-After, exposed", async () => {
    const d = await api({ CORS_ORIGINS: SHOP });
    d.runtime.setDraining();
    const r = await request(d.url, "GET", "/readyz", { headers: { origin: SHOP } });
    expect(r.status).toBe(503);
    expectAllowed(r, SHOP);
    expect(r.headers.get("retry-after")).toBeTruthy();
    expect(listed(r, "access-control-expose-headers")).toContain("retry-after");
  });

  it("Bull Board gets no CORS headers: operators use it from the API's own origin", async () => {
    const r = await request(a.url, "GET", "/admin/queues", { headers: { origin: SHOP } });
    expect(r.status).toBe(401);
    expect(corsHeaders(r)).toEqual([]);
  });
});

describe("CORS_ORIGINS=*", () => {
  it("any origin may read and write; no Vary on Origin is needed", async () => {
    const a = await api({ CORS_ORIGINS: "*" });
    for (const origin of [SHOP, STRANGER, "null"]) {
      const get = await request(a.url, "GET", "/products/1", { headers: { origin } });
      expect(get.status).toBe(200);
      expectAllowed(get, "*");
      const pre = await preflight(a, "/products", origin);
      expect(pre.status).toBe(204);
      expectAllowed(pre, "*");
    }
    const w = await request(a.url, "POST", "/registrations", { json: registration("star"), headers: { origin: STRANGER } });
    expect(w.status).toBe(202);
    expectAllowed(w, "*");
  });
});

describe("preflights are never limited, shed or authenticated", () => {
  it("with a budget of one write a minute, preflights do not spend it, and the 429 that follows carries the CORS headers", async () => {
    const a = await api({ CORS_ORIGINS: SHOP, RATE_LIMIT_PER_MIN: "1" });
    for (let i = 0; i < 5; i++) expect((await preflight(a, "/registrations", SHOP)).status).toBe(204);
    const first = await request(a.url, "POST", "/registrations", { json: registration("rl1"), headers: { origin: SHOP } });
    expect(first.status).toBe(202);
    const limited = await request(a.url, "POST", "/registrations", { json: registration("rl2"), headers: { origin: SHOP } });
    expect(limited.status).toBe(429);
    expectAllowed(limited, SHOP);
    expect(limited.headers.get("retry-after")).toBeTruthy();
    expect((await preflight(a, "/registrations", SHOP)).status).toBe(204);
  });

  it("with auth on, a preflight needs no token; the 401 and 403 of the actual write carry the CORS headers", async () => {
    const secret = "cors-test-secret-that-is-long-enough-000";
    const a = await api({ CORS_ORIGINS: SHOP, JWT_SECRET: secret });
    expect((await preflight(a, "/products", SHOP)).status).toBe(204);
    const missing = await request(a.url, "POST", "/products", { json: {}, headers: { origin: SHOP } });
    expect(missing.status).toBe(401);
    expectAllowed(missing, SHOP);
    const token = await new SignJWT({ scope: "registrations:write" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("shop")
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode(secret));
    const wrongScope = await request(a.url, "POST", "/products", { json: {}, headers: { origin: SHOP, authorization: `Bearer ${token}` } });
    expect(wrongScope.status).toBe(403);
    expectAllowed(wrongScope, SHOP);
  });

  it("while the event loop lags, a preflight is answered and the shed 503 carries the CORS headers", async () => {
    const a = await api({ CORS_ORIGINS: SHOP, SHED_LAG_MS: "50" });
    const shedder = a.runtime.deps.shedder;
    await waitFor(() => !shedder.warmingUp(), 10_000, "the warm-up after start");
    // The loop the API runs on is late tick after tick (one stall alone sheds nothing).
    for (let i = 0; i < 5; i++) {
      const until = Date.now() + 150;
      while (Date.now() < until) {
        // stall the event loop the API runs on
      }
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    expect(shedder.sustainedDelayMs()).toBeGreaterThan(50);
    const pendingWrite = request(a.url, "POST", "/registrations", { json: registration("shed"), headers: { origin: SHOP } });
    const pendingPreflight = preflight(a, "/registrations", SHOP);
    const [shed, pre] = await Promise.all([pendingWrite, pendingPreflight]);
    expect(shed.status).toBe(503);
    expectAllowed(shed, SHOP);
    expect(shed.headers.get("retry-after")).toBe("1");
    expect(pre.status).toBe(204);
    expectAllowed(pre, SHOP);
  });
});

describe("CORS_ORIGINS is validated at start", () => {
  it.each([
    ["https://shop.example/", 'write "https://shop.example"'],
    ["https://Shop.Example", 'write "https://shop.example"'],
    ["https://shop.example:443", 'write "https://shop.example"'],
    ["shop.example", "is not an http(s) origin"],
    ["ftp://shop.example", "is not an http(s) origin"],
    ["*, https://shop.example", "either * or a list"],
  ])("%j is refused, naming the variable", (value, message) => {
    expect(() => loadEnv({ CORS_ORIGINS: value })).toThrow(message);
    expect(() => loadEnv({ CORS_ORIGINS: value })).toThrow("CORS_ORIGINS");
  });

  it("unset or empty is off; * and lists are taken as given", () => {
    expect(loadEnv({}).CORS_ORIGINS).toBeUndefined();
    expect(loadEnv({ CORS_ORIGINS: " " }).CORS_ORIGINS).toBeUndefined();
    expect(loadEnv({ CORS_ORIGINS: "*" }).CORS_ORIGINS).toBe("*");
    expect(loadEnv({ CORS_ORIGINS: `${SHOP},${TOOL}` }).CORS_ORIGINS).toEqual([SHOP, TOOL]);
  });
});
