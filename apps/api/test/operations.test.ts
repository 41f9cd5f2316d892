import { createServer, type Server } from "node:http";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request, startApi, testEnv, waitFor, type Api } from "../../../test/support/harness.js";
import { freePort } from "../../../test/support/private-redis.js";

const { prefix } = testEnv("ops");
const registration = (n: string | number) => ({ email: `ops${n}@example.com`, name: `Ops ${n}` });
/** Blocks the event loop this process (and the API under test in it) runs on. */
const stall = (ms: number) => {
  for (const until = Date.now() + ms; Date.now() < until; );
};
const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` });

describe("operator surfaces", () => {
  let api: Api;
  beforeAll(async () => {
    api = await startApi(`${prefix.slice(0, -1)}-board}`, { ADMIN_USER: "ops", ADMIN_PASSWORD: "s3cret-pass" });
  });
  afterAll(() => api.close());

  it("Bull Board and its API routes answer 401 without credentials or with wrong ones", async () => {
    for (const path of ["/admin/queues", "/admin/queues/api/queues", "/admin/queues/static/favicon-32x32.png"]) {
      const none = await request(api.url, "GET", path);
      expect(none.status, path).toBe(401);
      expect(none.headers.get("www-authenticate")).toMatch(/^Basic realm=/);
      expect(none.headers.get("content-type")).toMatch(/problem\+json/);
      expect((await request(api.url, "GET", path, { headers: basic("ops", "wrong") })).status).toBe(401);
      expect((await request(api.url, "GET", path, { headers: basic("opsx", "s3cret-pass") })).status).toBe(401);
    }
  });

  it("Bull Board lists every queue to an operator", async () => {
    const page = await request(api.url, "GET", "/admin/queues", { headers: basic("ops", "s3cret-pass") });
    expect(page.status).toBe(200);
    expect(page.text).toContain("<div id=\"root\"");
    const queues = await request(api.url, "GET", "/admin/queues/api/queues", { headers: basic("ops", "s3cret-pass") });
    expect(queues.status).toBe(200);
    // Bull Board runs as an Express app of its own: it too hides the framework.
    for (const r of [page, queues]) expect(r.headers.get("x-powered-by")).toBeNull();
    expect(queues.body.queues.map((q: { name: string }) => q.name).sort()).toEqual(["bulk", "emails", "maintenance", "products", "registrations"]);
  });

  it("in read-only mode operators can look but not act", async () => {
    const readOnly = await startApi(`${prefix.slice(0, -1)}-ro}`, { ADMIN_USER: "ops", ADMIN_PASSWORD: "s3cret-pass", ADMIN_READ_ONLY: "true" });
    try {
      const auth = basic("ops", "s3cret-pass");
      const queues = await request(readOnly.url, "GET", "/admin/queues/api/queues", { headers: auth });
      expect(queues.body.queues.every((q: { readOnlyMode: boolean }) => q.readOnlyMode)).toBe(true);
      const retry = await request(readOnly.url, "PUT", "/admin/queues/api/queues/products/retry/failed", { headers: auth });
      expect(retry.status).toBeGreaterThanOrEqual(400);
      const writable = await request(api.url, "GET", "/admin/queues/api/queues", { headers: auth });
      expect(writable.body.queues.some((q: { readOnlyMode: boolean }) => q.readOnlyMode)).toBe(false);
    } finally {
      await readOnly.close();
    }
  });

  it("/metrics exposes request latency by route, queue depth by state, shedding and rate-limit counters", async () => {
    await request(api.url, "POST", "/registrations", { json: registration("metrics") });
    const r = await request(api.url, "GET", "/metrics");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(r.text).toMatch(/http_request_duration_seconds_bucket\{[^}]*route="\/registrations"[^}]*status="202"/);
    expect(r.text).toMatch(/ingest_queue_jobs\{queue="registrations",state="waiting"\} [1-9]/);
    expect(r.text).toMatch(/ingest_queue_jobs\{queue="products",state="failed"\} \d/);
    for (const name of ["ingest_shed_requests_total", "ingest_rate_limited_requests_total", "ingest_cache_reads_total", "ingest_event_loop_delay_seconds", "nodejs_eventloop_lag_seconds", "process_resident_memory_bytes", "ingest_writes_accepted_total"]) {
      expect(r.text, name).toContain(`# TYPE ${name}`);
    }
  });

  it("operational routes answer other methods with 405 and Allow: GET, HEAD, as problem+json", async () => {
    for (const path of ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"]) {
      for (const method of ["POST", "PUT", "DELETE"]) {
        const r = await request(api.url, method, path, { json: {} });
        expect(r.status, `${method} ${path}`).toBe(405);
        expect(r.headers.get("allow")).toBe("GET, HEAD");
        expect(r.headers.get("content-type")).toMatch(/^application\/problem\+json/);
        expect(r.body).toMatchObject({ type: "/problems/method-not-allowed", status: 405 });
      }
      expect((await request(api.url, "HEAD", path)).status, `HEAD ${path}`).toBe(200);
    }
  });

  it("/readyz answers 200 when ready, and 503 problem+json with Retry-After and each dependency's check when not", async () => {
    const ready = await request(api.url, "GET", "/readyz");
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: "ready", draining: false, redis: "up", postgres: "up" });
    const blind = await startApi(`${prefix.slice(0, -1)}-notready}`, { DATABASE_URL: `postgres://postgres@127.0.0.1:${await freePort()}/nowhere` });
    try {
      const r = await request(blind.url, "GET", "/readyz");
      expect(r.status).toBe(503);
      expect(r.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(r.headers.get("retry-after")).toBe("2");
      expect(r.headers.get("cache-control")).toBe("no-store");
      expect(r.body).toEqual({
        type: "/problems/not-ready",
        title: "Not ready",
        status: 503,
        detail: "Not ready: postgres does not answer.",
        draining: false,
        checks: { redis: "up", postgres: "down" },
      });
      blind.runtime.setDraining();
      const draining = await request(blind.url, "GET", "/readyz");
      expect(draining.status).toBe(503);
      expect(draining.body).toMatchObject({ draining: true, detail: expect.stringContaining("shutting down") });
    } finally {
      await blind.close();
    }
  });

  it("sets security headers and hides the framework", async () => {
    const r = await request(api.url, "GET", "/healthz");
    expect(r.headers.get("x-powered-by")).toBeNull();
    expect(r.headers.get("x-content-type-options")).toBe("nosniff");
    expect(r.headers.get("content-security-policy")).toContain("default-src 'self'");
    // Plain-HTTP deployments must not have their board and docs assets upgraded to https.
    expect(r.headers.get("content-security-policy")).not.toContain("upgrade-insecure-requests");
    const docs = await request(api.url, "GET", "/docs");
    expect(docs.headers.get("content-security-policy")).not.toContain("upgrade-insecure-requests");
    expect(r.headers.get("x-request-id")).toBeTruthy();
    const echoed = await request(api.url, "GET", "/healthz", { headers: { "x-request-id": "trace-123" } });
    expect(echoed.headers.get("x-request-id")).toBe("trace-123");
  });
});

describe("auth for writes", () => {
  const SECRET = "a-test-secret-that-is-long-enough-for-hs256";
  let api: Api;
  const key = new TextEncoder().encode(SECRET);
  const token = (claims: Record<string, unknown>, opts: { exp?: string; key?: Uint8Array } = {}) =>
    new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt().setExpirationTime(opts.exp ?? "5m").sign(opts.key ?? key);

  beforeAll(async () => {
    api = await startApi(`${prefix.slice(0, -1)}-auth}`, { JWT_SECRET: SECRET });
  });
  afterAll(() => api.close());

  const post = (path: string, json: unknown, bearer?: string, headers: Record<string, string> = {}) =>
    request(api.url, "POST", path, { json, headers: { ...headers, ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) } });

  it("a write without a token → 401 with a Bearer challenge; a bad or expired one → 401", async () => {
    const none = await post("/registrations", registration("a1"));
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(none.headers.get("content-type")).toMatch(/problem\+json/);
    const forged = await token({ sub: "u1", scope: "registrations:write" }, { key: new TextEncoder().encode("x".repeat(48)) });
    expect((await post("/registrations", registration("a2"), forged)).status).toBe(401);
    const expired = await token({ sub: "u1", scope: "registrations:write" }, { exp: "-1m" });
    expect((await post("/registrations", registration("a3"), expired)).status).toBe(401);
    expect((await post("/registrations", registration("a4"), "not.a.jwt")).status).toBe(401);
  });

  it("a token without the route's scope → 403; with it → 202", async () => {
    const productsOnly = await token({ sub: "u2", scope: "products:write" });
    const denied = await post("/registrations", registration("b1"), productsOnly);
    expect(denied.status).toBe(403);
    expect(denied.body.detail).toContain("registrations:write");
    expect((await post("/products", { name: "p", category: "c", default_price: 1 }, productsOnly)).status).toBe(202);
    const both = await token({ sub: "u2", scp: ["registrations:write", "products:write"] });
    expect((await post("/registrations", registration("b2"), both)).status).toBe(202);
  });

  it("reads stay public", async () => {
    expect((await request(api.url, "GET", "/jobs/reg-00000000-0000-4000-8000-000000000000")).status).toBe(404);
    expect((await request(api.url, "GET", "/healthz")).status).toBe(200);
  });

  it("Idempotency-Keys are scoped to the token's subject", async () => {
    const alice = await token({ sub: "alice", scope: "registrations:write" });
    const bob = await token({ sub: "bob", scope: "registrations:write" });
    const key = { "idempotency-key": "same-key" };
    const a = await post("/registrations", registration("c1"), alice, key);
    const b = await post("/registrations", registration("c1"), bob, key);
    const a2 = await post("/registrations", registration("c1"), alice, key);
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(b.body.jobId).not.toBe(a.body.jobId);
    expect(a2.body.jobId).toBe(a.body.jobId);
  });

  it("verifies RS256 tokens against a JWKS URL", async () => {
    const { publicKey, privateKey } = await generateKeyPair("RS256");
    const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256", use: "sig" };
    const jwks: Server = createServer((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));
    const jwksUrl = `http://127.0.0.1:${(jwks.address() as { port: number }).port}/jwks.json`;
    const viaJwks = await startApi(`${prefix.slice(0, -1)}-jwks}`, { JWKS_URL: jwksUrl });
    try {
      const signed = await new SignJWT({ sub: "svc", scope: "registrations:write" })
        .setProtectedHeader({ alg: "RS256", kid: "k1" })
        .setExpirationTime("5m")
        .sign(privateKey);
      expect((await request(viaJwks.url, "POST", "/registrations", { json: registration("d1"), headers: { authorization: `Bearer ${signed}` } })).status).toBe(202);
      const hs = await token({ sub: "svc", scope: "registrations:write" });
      expect((await request(viaJwks.url, "POST", "/registrations", { json: registration("d2"), headers: { authorization: `Bearer ${hs}` } })).status).toBe(401);
    } finally {
      await viaJwks.close();
      jwks.close();
    }
  });
});

describe("rate limits and load shedding", () => {
  it("the per-client budget answers 429 with Retry-After and RateLimit headers, per address behind a trusted proxy", async () => {
    const api = await startApi(`${prefix.slice(0, -1)}-rl}`, { RATE_LIMIT_PER_MIN: "3", TRUST_PROXY: "1" });
    try {
      const from = (ip: string) => ({ "x-forwarded-for": ip });
      const ok = await request(api.url, "POST", "/registrations", { json: registration("r0"), headers: from("10.0.0.1") });
      expect(ok.status).toBe(202);
      expect(ok.headers.get("ratelimit-limit")).toBe("3");
      expect(ok.headers.get("ratelimit-remaining")).toBe("2");
      for (let i = 1; i < 3; i++) await request(api.url, "POST", "/registrations", { json: registration(`r${i}`), headers: from("10.0.0.1") });
      const limited = await request(api.url, "POST", "/registrations", { json: registration("r9"), headers: from("10.0.0.1") });
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(limited.headers.get("ratelimit-remaining")).toBe("0");
      expect(limited.headers.get("content-type")).toMatch(/problem\+json/);
      // Another client has its own budget.
      expect((await request(api.url, "POST", "/registrations", { json: registration("r10"), headers: from("10.0.0.2") })).status).toBe(202);
      const metrics = await request(api.url, "GET", "/metrics");
      expect(metrics.text).toMatch(/ingest_rate_limited_requests_total [1-9]/);
    } finally {
      await api.close();
    }
  });

  it("an event loop late tick after tick past SHED_LAG_MS makes new requests 503 at once, probes excepted", async () => {
    const api = await startApi(`${prefix.slice(0, -1)}-shed}`, { SHED_LAG_MS: "100" });
    try {
      const shedder = api.runtime.deps.shedder;
      await waitFor(() => !shedder.warmingUp(), 10_000, "the warm-up after start");
      // One stall (a cold code path, a GC) is not overload: the next request is taken.
      stall(300);
      expect((await request(api.url, "POST", "/registrations", { json: registration("s0") })).status).toBe(202);
      // The loop the API runs on is late on every tick: overload.
      for (let i = 0; i < 5; i++) {
        stall(250);
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      const shed = await request(api.url, "POST", "/registrations", { json: registration("s1") });
      expect(shed.status).toBe(503);
      expect(shed.headers.get("retry-after")).toBe("1");
      expect((await request(api.url, "GET", "/healthz")).status).toBe(200);
      await waitFor(async () => (await request(api.url, "POST", "/registrations", { json: registration("s2") })).status === 202, 5_000, "recovery");
      expect((await request(api.url, "GET", "/metrics")).text).toMatch(/ingest_shed_requests_total\{reason="event_loop"\} [1-9]/);
    } finally {
      await api.close();
    }
  });

  it("the stalls of start-up shed nothing: the first requests after start are taken", async () => {
    const api = await startApi(`${prefix.slice(0, -1)}-warm}`, { SHED_LAG_MS: "100" });
    try {
      expect(api.runtime.deps.shedder.warmingUp()).toBe(true);
      for (let i = 0; i < 5; i++) {
        stall(250);
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      expect((await request(api.url, "POST", "/registrations", { json: registration("w1") })).status).toBe(202);
    } finally {
      await api.close();
    }
  });

  it("above QUEUE_HIGH_WATER waiting jobs, writes answer 503 until the backlog drains", async () => {
    const api = await startApi(`${prefix.slice(0, -1)}-hw}`, { QUEUE_HIGH_WATER: "2" });
    try {
      for (let i = 0; i < 3; i++) expect((await request(api.url, "POST", "/registrations", { json: registration(`h${i}`) })).status).toBe(202);
      const refused = await waitFor(async () => {
        const r = await request(api.url, "POST", "/registrations", { json: registration("hx") });
        return r.status === 503 ? r : undefined;
      }, 5_000, "high-water refusal");
      expect(refused.headers.get("retry-after")).toBeTruthy();
      expect(refused.body.type).toBe("/problems/queue-full");
      await api.runtime.deps.queues.registrations.drain();
      await waitFor(async () => (await request(api.url, "POST", "/registrations", { json: registration("hy") })).status === 202, 5_000, "accepting again");
    } finally {
      await api.close();
    }
  });
});
