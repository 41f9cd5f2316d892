// The apps under test: the API in process or spawned, the worker spawned, and the requests tests make.
import { spawn, type ChildProcess } from "node:child_process";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { inject } from "vitest";
import { createDb, type DbHandle } from "@ingest/db";
import { carrierIdOf, writeQueueOf, writesOf, type Queues, type Write } from "@ingest/jobs";
import { createApp } from "../../apps/api/src/app.js";
import { createApiServer } from "../../apps/api/src/server.js";
import { createRuntime, type Runtime } from "../../apps/api/src/deps.js";
import { loadEnv } from "../../apps/api/src/env.js";
import { createLogger } from "../../apps/api/src/logger.js";
import { cachePrefixFor, ROOT, testEnv, waitFor } from "./env.js";

export { cachePrefixFor, ROOT, testEnv, waitFor };

export type Api = { url: string; runtime: Runtime; server: Server; close: () => Promise<void> };

/** The real app on an ephemeral port, wired to the real services. */
export async function startApi(
  prefix: string,
  overrides: Record<string, string> = {},
  opts: { skipReady?: boolean } = {},
): Promise<Api> {
  const env = loadEnv({
    DATABASE_URL: inject("databaseUrl"),
    REDIS_URL: inject("redisUrl"),
    QUEUE_PREFIX: prefix,
    CACHE_PREFIX: cachePrefixFor(prefix),
    LOG_LEVEL: "silent",
    NODE_ENV: "test",
    // A busy test machine stalls the event loop; shedding is tested on its own.
    SHED_LAG_MS: "0",
    ...overrides,
  });
  const runtime = createRuntime(env, createLogger(env.LOG_LEVEL, false));
  if (!opts.skipReady) await runtime.ready();
  const server = createApiServer(createApp(runtime.deps));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    runtime,
    server,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await runtime.close();
    },
  };
}

export type WorkerProcess = {
  proc: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
};

/**
 * A compiled app as its own process with the run's services and the given prefix;
 * resolves once its output shows `readyText`, fails with its output if it exits first.
 */
async function spawnApp(app: "api" | "worker", prefix: string, env: Record<string, string>, readyText: string): Promise<WorkerProcess> {
  const proc = spawn(process.execPath, [join(ROOT, `apps/${app}/dist/index.js`)], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: inject("databaseUrl"),
      REDIS_URL: inject("redisUrl"),
      QUEUE_PREFIX: prefix,
      CACHE_PREFIX: cachePrefixFor(prefix),
      NODE_ENV: "test",
      LOG_LEVEL: "info",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  await waitFor(() => out.includes(readyText) || proc.exitCode !== null, 15_000, `${app} start`);
  if (proc.exitCode !== null) throw new Error(`${app} exited at start:\n${out}`);
  return {
    proc,
    output: () => out,
    exited,
    stop: async (signal = "SIGTERM") => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/** The compiled worker as its own process, as in production. Resolves once it is consuming. */
export function spawnWorker(prefix: string, extra: Record<string, string> = {}): Promise<WorkerProcess> {
  return spawnApp("worker", prefix, extra, "worker started");
}

export function testDb(): DbHandle {
  return createDb(inject("databaseUrl"), { max: 4, applicationName: "ingest-test" });
}

export type Reply = { status: number; headers: Headers; body: any; text: string; ms: number };

export async function request(
  base: string,
  method: string,
  path: string,
  opts: { json?: unknown; body?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...opts.headers };
  let body = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers["content-type"] ??= "application/json";
  }
  const started = performance.now();
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, body: parsed, text, ms: performance.now() - started };
}

/** Waits for a job to finish through the public status route. */
export async function waitForJob(base: string, jobId: string, timeoutMs = 15_000): Promise<any> {
  return waitFor(
    async () => {
      const r = await request(base, "GET", `/jobs/${jobId}?waitMs=1000`);
      return r.body?.state === "completed" || r.body?.state === "failed" ? r.body : undefined;
    },
    timeoutMs,
    `job ${jobId}`,
  );
}

export type ApiProcess = WorkerProcess;

/** The compiled API as its own process on a given port. Resolves once Redis is connected. */
export function spawnApi(
  prefix: string,
  port: number,
  extra: Record<string, string> = {},
  readyText = "queue redis connected",
): Promise<ApiProcess> {
  const env = { PORT: String(port), HOST: "127.0.0.1", SHED_LAG_MS: "0", RATE_LIMIT_PER_MIN: "0", ...extra };
  return spawnApp("api", prefix, env, readyText);
}

/** A write as its carrier job in Redis holds it (payload, sequence), found by the write's id. */
export async function storedWrite(queues: Queues, writeId: string): Promise<Write | undefined> {
  const queue = writeQueueOf(writeId);
  const carrierId = carrierIdOf(writeId);
  if (!queue || !carrierId) return undefined;
  const job = await queues[queue].getJob(carrierId);
  return job ? writesOf(job)?.find((w) => w.id === writeId) : undefined;
}
