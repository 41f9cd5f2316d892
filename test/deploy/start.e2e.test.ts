import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cachePrefixFor, request, ROOT, testEnv, waitFor } from "../support/harness.js";
import { freePort } from "../support/private-redis.js";

const { databaseUrl, redisUrl, prefix } = testEnv("start");

/** Something else on the port, answering /healthz as an API would. */
async function impostor(port: number): Promise<Server> {
  const server = createServer((_req, res) => res.setHeader("content-type", "application/json").end('{"status":"ok"}'));
  await new Promise<void>((resolve) => server.listen(port, "0.0.0.0", resolve));
  return server;
}

function launch(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    // INGEST_PREPARED: under `npm test` the install and build are done (scripts/run.mjs).
    env: { PATH: process.env.PATH, INGEST_PREPARED: process.env.INGEST_PREPARED ?? "", DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, QUEUE_PREFIX: prefix, CACHE_PREFIX: cachePrefixFor(prefix), LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, exited, output: () => out };
}

const startScript = (env: Record<string, string>) => launch([join(ROOT, "scripts/run.mjs"), "start"], { WORKERS: "1", ...env });

describe("`npm start` and the processes it runs, on ports that are taken", () => {
  const blockers: Server[] = [];
  afterEach(async () => {
    await Promise.all(blockers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  it("a taken API port: one line naming it and PORT, exit 1, no banner", async () => {
    const port = await freePort();
    blockers.push(await impostor(port));
    const run = startScript({ PORT: String(port), WORKER_METRICS_PORT: String(await freePort()) });
    expect(await run.exited).toBe(1);
    const out = run.output();
    expect(out).toContain(`port ${port} is already in use: stop what listens there, or set PORT to a free port`);
    expect(out).not.toMatch(/> API: |EADDRINUSE|at Server/);
  }, 90_000);

  it("a taken worker metrics port: one line naming it and WORKER_METRICS_PORT, exit 1, no banner", async () => {
    const metrics = await freePort();
    blockers.push(await impostor(metrics));
    const run = startScript({ PORT: String(await freePort()), WORKER_METRICS_PORT: String(metrics) });
    expect(await run.exited).toBe(1);
    expect(run.output()).toContain(`port ${metrics} is already in use: stop what listens there, or set WORKER_METRICS_PORT to a free port`);
    expect(run.output()).not.toMatch(/> API: |EADDRINUSE/);
  }, 90_000);

  it("the API and the worker started on a port taken meanwhile say so in one line and exit 1", async () => {
    const port = await freePort();
    blockers.push(await impostor(port));
    const api = launch([join(ROOT, "apps/api/dist/index.js")], { PORT: String(port) });
    expect(await api.exited).toBe(1);
    expect(api.output().trim().split("\n").at(-1)).toBe(`port ${port} is already in use: stop what listens there, or set PORT to a free port`);
    expect(api.output()).not.toMatch(/EADDRINUSE/);
    const worker = launch([join(ROOT, "apps/worker/dist/index.js")], { WORKER_METRICS_PORT: String(port) });
    expect(await worker.exited).toBe(1);
    expect(worker.output()).toContain(`port ${port} is already in use: stop what listens there, or set WORKER_METRICS_PORT to a free port`);
    expect(worker.output()).not.toMatch(/EADDRINUSE/);
  }, 60_000);

  it("the banner comes once this start's API answers, with the Bull Board login made for it", async () => {
    const port = await freePort();
    const run = startScript({ PORT: String(port), WORKER_METRICS_PORT: String(await freePort()) });
    try {
      const banner = await waitFor(() => /Bull Board: .*user admin, password (\S+) /.exec(run.output()) ?? (run.child.exitCode !== null), 90_000, "the banner");
      expect(banner, run.output()).not.toBe(true);
      const [, password] = banner as RegExpExecArray;
      const auth = { authorization: `Basic ${Buffer.from(`admin:${password}`).toString("base64")}` };
      expect((await request(`http://127.0.0.1:${port}`, "GET", "/admin/queues/api/queues", { headers: auth })).status).toBe(200);
      const health = await request(`http://127.0.0.1:${port}`, "GET", "/healthz");
      expect(health.body).toEqual({ status: "ok", instance: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    } finally {
      run.child.kill("SIGTERM");
      expect(await run.exited).toBe(0);
    }
  }, 120_000);
});
