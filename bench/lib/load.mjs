// Bounded HTTP load with autocannon against 127.0.0.1 only.
import http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import autocannon from "autocannon";
import { cpuOf } from "./cpu.mjs";
import { state } from "./processes.mjs";

export const CONNECTIONS = 50;
// A hard cap per run beside the duration, so no run can go on unbounded.
const MAX_RATE = 50_000;
const AMOUNT_CAP_S = 30;

/**
 * Runs one load, bounded in time and requests. `request` is an autocannon request object (method, path, headers,
 * setupRequest, ...); `overallRate` fixes the offered rate. Returns the figures we keep.
 */
export async function runLoad(url, { seconds, amount, request, overallRate, connections = CONNECTIONS, countHeader, pid }) {
  if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(url)) throw new Error(`refusing to load ${url}: 127.0.0.1 only`);
  const seen = {};
  const req = { ...request };
  if (countHeader) {
    req.onResponse = (_status, _body, _ctx, headers) => {
      let v = "none";
      for (const k in headers) if (k.toLowerCase() === countHeader) v = headers[k];
      seen[v] = (seen[v] ?? 0) + 1;
    };
  }
  const tracker = autocannon({
    url,
    connections,
    // Either `amount` requests (stopped after AMOUNT_CAP_S anyway), or `seconds` long and capped in requests.
    ...(amount ? { amount } : { duration: seconds, maxOverallRequests: Math.ceil(MAX_RATE * seconds) }),
    ...(overallRate ? { overallRate } : {}),
    requests: [req],
    sampleInt: 250,
    timeout: 10,
  });
  const cap = amount ? setTimeout(() => tracker.stop(), AMOUNT_CAP_S * 1000) : undefined;
  // With the server's pid: the CPU it spent per answer, the figure a busy machine disturbs least.
  const cpuBefore = pid ? cpuOf(pid) : undefined;
  const result = await tracker;
  const cpuAfter = pid ? cpuOf(pid) : undefined;
  clearTimeout(cap);
  const ok = result["2xx"];
  const answered = ok + result.non2xx;
  const cpuUsPerRequest = cpuBefore !== undefined && cpuAfter !== undefined && answered ? ((cpuAfter - cpuBefore) * 1e6) / answered : undefined;
  return {
    seconds: result.duration,
    ok,
    rate: ok / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    ...(cpuUsPerRequest !== undefined ? { cpuUsPerRequest } : {}),
    ...(countHeader ? { [countHeader]: seen } : {}),
  };
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Median of each figure over repeated runs (the runs are kept as well). */
export function summarise(runs) {
  const pick = (k) => median(runs.map((r) => r[k]));
  const cpu = runs.every((r) => r.cpuUsPerRequest !== undefined) ? { cpuUsPerRequest: pick("cpuUsPerRequest") } : {};
  return { rate: pick("rate"), p50: pick("p50"), p99: pick("p99"), ...cpu, ok: runs.reduce((s, r) => s + r.ok, 0),
    non2xx: runs.reduce((s, r) => s + r.non2xx, 0), errors: runs.reduce((s, r) => s + r.errors, 0), runs };
}

/**
 * Runs each target in turn, `repeats` rounds, so slow drifts of a noisy machine fall on
 * all of them alike. targets: { key: { url, request, countHeader? } }.
 */
export async function roundRobin(targets, { seconds, repeats, warmupSeconds }) {
  const runs = Object.fromEntries(Object.keys(targets).map((k) => [k, []]));
  if (warmupSeconds) for (const t of Object.values(targets)) await runLoad(t.url, { ...t, seconds: warmupSeconds });
  for (let i = 0; i < repeats; i++) {
    for (const [key, t] of Object.entries(targets)) runs[key].push(await runLoad(t.url, { ...t, seconds }));
  }
  return Object.fromEntries(Object.entries(runs).map(([k, r]) => [k, summarise(r)]));
}

/** A POST /registrations request whose body carries a fresh email every time. */
export function registrationRequest(tag) {
  let n = 0;
  return {
    method: "POST",
    path: "/registrations",
    headers: { "content-type": "application/json" },
    setupRequest: (req) => ({
      ...req,
      body: JSON.stringify({ email: `${tag}-${n++}@bench.example`, name: "Bench User", plan: "free" }),
    }),
  };
}

/**
 * An open-loop load at an even pace: request i is due at start + i/rate, whatever the
 * answers before it do (autocannon's overallRate is a per-second quota that each
 * connection sends back to back at the top of every second: bursts, which a latency
 * figure must not measure). Latency counts from the due time. Bounded: rate × seconds
 * requests, at most maxInFlight at once (a request due beyond that is skipped and
 * counted), each cut after 10 s. request(i) returns { method, path, headers, body,
 * onResponse?(status, text) }. The first warmupSeconds run at the same pace over the same
 * connections and are not counted (the generator's and the server's cold paths, new
 * connections).
 */
export async function runPaced(url, { seconds, rate, request, maxInFlight = 256, warmupSeconds = 0 }) {
  if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(url)) throw new Error(`refusing to load ${url}: 127.0.0.1 only`);
  const { hostname, port } = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: maxInFlight });
  const warm = Math.round(warmupSeconds * rate);
  const total = Math.min(Math.round((seconds + warmupSeconds) * rate), MAX_RATE * AMOUNT_CAP_S);
  const latencies = [];
  let ok = 0, non2xx = 0, errors = 0, skipped = 0, inFlight = 0;
  const pending = new Set();
  const started = performance.now();
  for (let i = 0; i < total && !state.aborted; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait >= 1) await sleep(wait);
    const counted = i >= warm;
    if (inFlight >= maxInFlight) {
      if (counted) skipped++;
      continue;
    }
    const { method, path, headers = {}, body, onResponse } = request(i);
    inFlight++;
    const done = new Promise((resolve) => {
      const req = http.request({ agent, hostname, port, method, path, timeout: 10_000, headers: body === undefined ? headers : { ...headers, "content-length": Buffer.byteLength(body) } }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (text += d));
        res.on("end", () => {
          if (counted) {
            latencies.push(performance.now() - due);
            if (res.statusCode >= 200 && res.statusCode < 300) ok++;
            else non2xx++;
          }
          onResponse?.(res.statusCode, text);
          resolve();
        });
        res.on("error", () => (counted && errors++, resolve()));
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", () => (counted && errors++, resolve()));
      req.end(body);
    });
    pending.add(done);
    void done.then(() => (inFlight--, pending.delete(done)));
  }
  const sent = performance.now();
  await Promise.all(pending);
  agent.destroy();
  const sorted = latencies.sort((a, b) => a - b);
  const at = (p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] : undefined);
  const duration = (sent - started) / 1000 - warmupSeconds;
  return { seconds: duration, requests: total - warm, ok, rate: ok / duration, p50: at(0.5), p99: at(0.99), max: sorted.at(-1), non2xx, errors, skipped };
}
