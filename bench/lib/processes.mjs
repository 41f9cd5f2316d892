// Child processes of one bench run: spawned on free 127.0.0.1 ports, tracked, and all
// stopped by stopAll() whatever happens (failure, Ctrl-C).
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

export const ROOT = join(import.meta.dirname, "..", "..");
const children = new Set();
const closers = new Set();

// Set once the run is being torn down: waits and new work fail instead of going on.
export const state = { aborted: false };

/** Registers something to close at teardown (the bench's own Redis connections); returns an unregister. */
export function onTeardown(close) {
  closers.add(close);
  return () => closers.delete(close);
}

/** Stops the run: no new waits, own connections closed, every child stopped. */
export async function teardown() {
  state.aborted = true;
  await Promise.allSettled([...closers].map((c) => c()));
  await stopAll();
  // Again: a child stopped just now may have written into what a closer removes.
  await Promise.allSettled([...closers].map((c) => c()));
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Starts `node <script>` with only the given env (plus PATH); output is kept for error reports. */
export function startNode(name, script, env, args = []) {
  if (state.aborted) throw new Error(`aborted: not starting ${name}`);
  const proc = spawn(process.execPath, [join(ROOT, script), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const keep = (d) => {
    out = (out + d).slice(-16_000);
  };
  proc.stdout.on("data", keep);
  proc.stderr.on("data", keep);
  // "close", not "exit": the output is complete by then.
  const exited = new Promise((resolve) => proc.on("close", (code, signal) => resolve(code ?? signal)));
  const child = { name, proc, exited, output: () => out, stop: () => stopChild(child) };
  children.add(child);
  exited.then(() => children.delete(child));
  return child;
}

/** Runs a CLI to its end (tracked, so teardown stops it too); resolves with its output. */
export async function runCli(script, args, env) {
  const child = startNode(script, script, env, args);
  const code = await child.exited;
  if (code !== 0) throw new Error(`${script} exited ${code}:\n${child.output()}`);
  return child.output();
}

async function stopChild(child, graceMs = 5_000) {
  const { proc } = child;
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  if (alive()) proc.kill("SIGTERM");
  const timer = setTimeout(() => alive() && proc.kill("SIGKILL"), graceMs);
  await child.exited;
  clearTimeout(timer);
}

export const stopAll = () => Promise.all([...children].map((c) => stopChild(c)));
export const runningChildren = () => [...children];

/** Polls until fn() is truthy; a child that exits meanwhile fails the wait with its output. */
export async function waitFor(fn, { timeoutMs = 20_000, label = "condition", child } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (state.aborted) throw new Error(`aborted while waiting for ${label}`);
    if (child && child.proc.exitCode !== null) throw new Error(`${child.name} exited while waiting for ${label}:\n${child.output()}`);
    const value = await fn().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}${child ? `:\n${child.output()}` : ""}`);
    await sleep(25);
  }
}

/** An HTTP server child (the API or a baseline) that is up once `path` answers 200. */
export async function startServer(name, script, env, path = "/healthz") {
  const port = await freePort();
  const child = startNode(name, script, { ...env, PORT: String(port), HOST: "127.0.0.1" });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(url + path)).ok, { label: `${name} on ${url}${path}`, child });
  return { ...child, url, port, pid: child.proc.pid };
}

/** Resident set size of a process in bytes (Linux), or undefined. */
export async function rssOf(pid) {
  const { readFile } = await import("node:fs/promises");
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const kb = Number(status.match(/VmRSS:\s+(\d+)/)?.[1]);
  return Number.isFinite(kb) ? kb * 1024 : undefined;
}
