import { once } from "node:events";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import express from "express";
import helmet from "helmet";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { edge } from "../src/middleware/edge.js";
import { securityHeaderSets } from "../src/middleware/security-headers.js";

/** A real Express app behind the edge middleware, with its log lines and observations kept. */
async function serve(opts: { lagMs?: number; delayMs?: number; draining?: boolean } = {}) {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  const log = pino({ level: "debug" }, sink);
  const done: { route: string; status: number; seconds: number }[] = [];
  let shed = 0;
  const app = express();
  app.use(
    edge({
      log,
      onDone: (req, res, seconds) => done.push({ route: req.route ? String(req.route.path) : "unmatched", status: res.statusCode, seconds }),
      isDraining: () => opts.draining ?? false,
      shed: { lagMs: opts.lagMs ?? 0, sustainedDelayMs: () => opts.delayMs ?? 0, onShed: () => shed++ },
    }),
  );
  app.get("/ok", (_req, res) => {
    res.json({ ok: true });
  });
  app.get("/docs", (_req, res) => {
    res.send("docs");
  });
  app.get("/healthz", (_req, res) => {
    res.json({ ok: true });
  });
  app.get("/hang", () => {});
  app.use((err: { status?: number }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(err.status ?? 500).json({ error: true });
  });
  const server = createServer(app);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { server, url, lines, done, shedCount: () => shed };
}

let server: Server | undefined;
afterEach(() => {
  server?.closeAllConnections();
  server?.close();
  server = undefined;
});

describe("edge middleware", () => {
  it("sets exactly the headers helmet would, strict for the API and relaxed for the docs", async () => {
    // What helmet itself sets on a real response, against the list fixed at start.
    const sets = securityHeaderSets();
    const viaHelmet = express();
    viaHelmet.use(helmet({ contentSecurityPolicy: { directives: { "upgrade-insecure-requests": null } } }));
    viaHelmet.get("/", (_req, res) => {
      res.send("x");
    });
    const h = createServer(viaHelmet).listen(0, "127.0.0.1");
    await once(h, "listening");
    const reference = await fetch(`http://127.0.0.1:${(h.address() as AddressInfo).port}/`);
    h.close();
    for (const [name, value] of sets.strict) expect(reference.headers.get(name), name).toBe(value);
    expect(sets.strict.length).toBeGreaterThanOrEqual(10);

    const s = await serve();
    server = s.server;
    const api = await fetch(`${s.url}/ok`);
    expect(api.headers.get("content-security-policy")).toBe(reference.headers.get("content-security-policy"));
    expect(api.headers.get("x-frame-options")).toBe("SAMEORIGIN");
    const docs = await fetch(`${s.url}/docs`);
    expect(docs.headers.get("content-security-policy")).toContain("script-src 'self' 'unsafe-inline'");
    expect(api.headers.get("content-security-policy")).toContain("script-src 'self';");
  });

  it("echoes a sane X-Request-Id, replaces an insane one, and closes connections while draining", async () => {
    const s = await serve({ draining: true });
    server = s.server;
    const given = await fetch(`${s.url}/ok`, { headers: { "x-request-id": "trace-1" } });
    expect(given.headers.get("x-request-id")).toBe("trace-1");
    const made = await fetch(`${s.url}/ok`, { headers: { "x-request-id": "has space" } });
    expect(made.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    expect(made.headers.get("connection")).toBe("close");
  });

  it("logs one line per request at the level its status calls for, and observes finished requests once", async () => {
    const s = await serve();
    server = s.server;
    await fetch(`${s.url}/ok`, { headers: { "x-request-id": "ok-1" } });
    await fetch(`${s.url}/nowhere`, { headers: { "x-request-id": "missing-1" } });
    await new Promise((r) => setTimeout(r, 50));
    const byId = (id: string) => s.lines.filter((l) => (l.req as { id: string } | undefined)?.id === id);
    expect(byId("ok-1")).toMatchObject([{ level: 20, msg: "request completed", res: { statusCode: 200 }, req: { method: "GET", url: "/ok" } }]);
    expect(byId("missing-1")).toMatchObject([{ level: 30, msg: "request completed", res: { statusCode: 404 } }]);
    expect(s.done.map((d) => [d.route, d.status])).toEqual([
      ["/ok", 200],
      ["unmatched", 404],
    ]);
    expect(s.done.every((d) => d.seconds >= 0 && d.seconds < 5)).toBe(true);
  });

  it("a request cut off by its client is logged as aborted and not observed as finished", async () => {
    const s = await serve();
    server = s.server;
    const req = httpRequest(`${s.url}/hang`, { headers: { "x-request-id": "cut-1" } });
    req.on("error", () => {});
    req.end();
    await new Promise((r) => setTimeout(r, 100));
    req.destroy();
    await new Promise((r) => setTimeout(r, 100));
    const line = s.lines.find((l) => (l.req as { id: string } | undefined)?.id === "cut-1");
    expect(line?.msg).toBe("request aborted");
    expect(s.done).toEqual([]);
  });

  it("sheds with 503 while the event loop lags, probes excepted", async () => {
    const s = await serve({ lagMs: 100, delayMs: 500 });
    server = s.server;
    expect((await fetch(`${s.url}/ok`)).status).toBe(503);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    expect(s.shedCount()).toBe(1);
  });
});
