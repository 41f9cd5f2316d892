// Closed-loop HTTP load with wrk (Debian package): a C load generator that drives well
// over 10,000 requests/s on 2 cores, where a one-thread Node generator tops out near
// 5,000 and would squeeze every ratio toward 1. 127.0.0.1 only, bounded in time and requests.
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { cpuOf } from "./cpu.mjs";
import { onTeardown } from "./processes.mjs";

export const CONNECTIONS = 50;
const MAX_RATE = 50_000;
const SCRIPTS = join(import.meta.dirname, "..", "wrk");

/** Makes sure wrk is there, installing the Debian package when it is missing and apt-get can. */
export function ensureWrk() {
  if (spawnSync("wrk", ["--version"]).error === undefined) return;
  console.log("wrk is not installed: installing the Debian package (apt-get install -y wrk)");
  const res = spawnSync("apt-get", ["install", "-y", "wrk"], { stdio: "inherit" });
  if (res.error || res.status !== 0 || spawnSync("wrk", ["--version"]).error) {
    throw new Error("the benchmark needs wrk: install it (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk) and run again");
  }
}


const toMs = (v, unit) => Number(v) * ({ us: 0.001, ms: 1, s: 1_000 }[unit] ?? NaN);

/** Parses wrk --latency output. */
export function parseWrk(out) {
  const total = out.match(/^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)/m);
  const pct = (p) => {
    const m = out.match(new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s)`, "m"));
    return m ? toMs(m[1], m[2]) : undefined;
  };
  const non2xx = Number(out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  const errs = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const requests = Number(total?.[1] ?? NaN);
  const seconds = total ? Number(total[2]) * ({ us: 1e-6, ms: 1e-3, s: 1, m: 60 }[total[3]] ?? NaN) : NaN;
  return {
    requests,
    seconds,
    ok: requests - non2xx,
    rate: (requests - non2xx) / seconds,
    p50: pct(50),
    p99: pct(99),
    non2xx,
    errors: errs ? errs.slice(1).reduce((s, x) => s + Number(x), 0) : 0,
  };
}

/**
 * One wrk run against url (127.0.0.1 only) for `seconds`, with the named script of
 * bench/wrk (none: GET path; a script with a request function also stops itself after
 * BENCH_MAX_REQUESTS). With pids, also the CPU each of those processes spent per
 * answered request, and the generator's own.
 */
export async function runWrk(url, { seconds, script, path = "/", connections = CONNECTIONS, threads = 1, env = {}, pids = {} }) {
  if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(url)) throw new Error(`refusing to load ${url}: 127.0.0.1 only`);
  const maxPerThread = Math.ceil((MAX_RATE * seconds) / threads);
  const args = ["-t", String(threads), "-c", String(connections), "-d", `${Math.max(1, Math.round(seconds))}s`, "--timeout", "10s", "--latency"];
  if (script) args.push("-s", join(SCRIPTS, `${script}.lua`));
  args.push(`${url}${script ? "" : path}`);
  // A figure may be one process or several (PostgreSQL's server and backends, looked up
  // again after the run: a backend started meanwhile counts from zero).
  const pidsOf = async (p) => [typeof p === "function" ? await p() : p].flat();
  const snapshot = async () => {
    const out = {};
    for (const [k, p] of Object.entries(pids)) out[k] = new Map((await pidsOf(p)).map((pid) => [pid, cpuOf(pid)]));
    return out;
  };
  const before = await snapshot();
  const child = spawn("wrk", args, { env: { ...process.env, ...env, BENCH_MAX_REQUESTS: String(maxPerThread) }, stdio: ["ignore", "pipe", "pipe"] });
  const unregister = onTeardown(() => child.kill("SIGKILL"));
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  let wrkCpu;
  const sampler = setInterval(() => (wrkCpu = cpuOf(child.pid) ?? wrkCpu), 100);
  const code = await new Promise((resolve) => child.on("close", resolve));
  clearInterval(sampler);
  unregister();
  if (code !== 0) throw new Error(`wrk exited ${code}:\n${out}`);
  const result = parseWrk(out);
  const answered = result.requests;
  const cpuUsPerRequest = {};
  const after = await snapshot();
  for (const [k, now] of Object.entries(after)) {
    let spent = 0;
    for (const [pid, s] of now) if (s !== undefined) spent += s - (before[k].get(pid) ?? 0);
    if (answered && now.size) cpuUsPerRequest[k] = (spent * 1e6) / answered;
  }
  if (wrkCpu !== undefined && answered) cpuUsPerRequest.generator = (wrkCpu * 1e6) / answered;
  return { ...result, cpuUsPerRequest };
}

const median = (xs) => {
  const s = xs.filter((x) => x !== undefined && !Number.isNaN(x)).sort((a, b) => a - b);
  if (!s.length) return undefined;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Medians of each figure over runs (the runs are kept too). */
export function summariseWrk(runs) {
  const pick = (f) => median(runs.map(f));
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.cpuUsPerRequest ?? {})))];
  return {
    rate: pick((r) => r.rate),
    p50: pick((r) => r.p50),
    p99: pick((r) => r.p99),
    ok: runs.reduce((s, r) => s + r.ok, 0),
    non2xx: runs.reduce((s, r) => s + r.non2xx, 0),
    errors: runs.reduce((s, r) => s + r.errors, 0),
    cpuUsPerRequest: Object.fromEntries(keys.map((k) => [k, pick((r) => r.cpuUsPerRequest?.[k])])),
    runs,
  };
}

/** Each target in turn, `repeats` rounds, so a noisy machine's drifts fall on all alike. */
export async function roundRobinWrk(targets, { seconds, repeats, warmupSeconds }) {
  const runs = Object.fromEntries(Object.keys(targets).map((k) => [k, []]));
  let round = 0;
  const tagged = (t) => ({ ...t, env: { ...t.env, BENCH_TAG: `${t.tag ?? "w"}-${Date.now().toString(36)}-${round++}` } });
  if (warmupSeconds) for (const t of Object.values(targets)) await runWrk(t.url, { ...tagged(t), seconds: warmupSeconds });
  for (let i = 0; i < repeats; i++) {
    for (const [key, t] of Object.entries(targets)) runs[key].push(await runWrk(t.url, { ...tagged(t), seconds }));
  }
  return Object.fromEntries(Object.entries(runs).map(([k, r]) => [k, summariseWrk(r)]));
}
