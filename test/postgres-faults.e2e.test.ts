// The compiled API and two workers reach PostgreSQL — a private primary with a streaming
// replica — through a fault proxy, as behind a cloud endpoint or a Kubernetes Service:
// latency, a stall, resets, a black hole, a restart of the server and a failover to the
// promoted replica must cost no write and need no restart of ours.
import { join } from "node:path";
import { migrateDatabase } from "@ingest/db";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { FaultProxy, type Upstream } from "./support/fault-proxy.js";
import { ROOT, request, spawnApi, spawnWorker, testEnv, waitFor, type ApiProcess, type WorkerProcess } from "./support/harness.js";
import { KeyedWriters } from "./support/keyed-writers.js";
import { PrivatePostgres } from "./support/private-postgres.js";
import { freePort } from "./support/private-redis.js";

const { prefix } = testEnv("pgfaults");
const CATEGORY = `pgfaults-${inject("runId")}`;
const DATABASE = "ingest";
// Generous: the machine may be busy with other work while this runs.
const RECOVERY_BOUND_MS = 60_000;
// Short, so that a statement lost in a black hole is given up within the test's patience.
const STATEMENT_TIMEOUT_MS = 4_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let primary: PrivatePostgres;
let replica: PrivatePostgres;
// The server the address the apps use leads to now.
let current: PrivatePostgres;
let proxy: FaultProxy;
let api: ApiProcess;
let apiBase = "";
const workers: { proc: WorkerProcess; pid: number; metrics: string }[] = [];
const writers = new KeyedWriters(() => apiBase, "pg", CATEGORY);
const figures: string[] = [];

const upstreamOf = (server: PrivatePostgres): Upstream => ({ host: "127.0.0.1", port: server.port });

async function productRows(): Promise<{ name: string; n: number }[]> {
  const { rows } = await current.query<{ name: string; n: number }>(
    `select name, count(*)::int as n from products where category = '${CATEGORY}' group by name`,
    DATABASE,
  );
  return rows;
}

/** Waits until every write accepted so far is applied; resolves with how long that took. */
async function allApplied(label: string): Promise<number> {
  const started = Date.now();
  const keys = [...writers.accepted.keys()];
  await waitFor(
    async () => {
      const applied = new Set((await productRows().catch(() => [])).map((r) => r.name));
      return keys.every((k) => applied.has(k));
    },
    RECOVERY_BOUND_MS,
    `${label}: every accepted write applied`,
  ).catch(async (err) => {
    const applied = new Set((await productRows().catch(() => [])).map((r) => r.name));
    const missing = keys.filter((k) => !applied.has(k));
    console.log(`${label}: ${missing.length} of ${keys.length} accepted writes not applied`);
    for (const k of missing.slice(0, 3)) console.log(k, JSON.stringify((await request(apiBase, "GET", `/jobs/${writers.accepted.get(k)}`)).body));
    for (const w of workers) {
      const pools = (await request(w.metrics, "GET", "/metrics").catch(() => undefined))?.text.split("\n").filter((l) => l.startsWith("ingest_db_pool"));
      console.log(`--- worker ${w.pid}\n${problemLines(w.proc.output())}\n${pools?.join("\n")}`);
    }
    throw err;
  });
  return Date.now() - started;
}

const problemLines = (log: string) =>
  log
    .split("\n")
    .filter((l) => /"level":(40|50|60)/.test(l))
    .slice(-30)
    .join("\n");

const readiness = async () => (await request(apiBase, "GET", "/readyz").catch(() => undefined))?.body;

beforeAll(async () => {
  primary = await PrivatePostgres.primary(await freePort());
  await migrateDatabase(primary.url(DATABASE), join(ROOT, "migrations"));
  replica = await PrivatePostgres.replicaOf(primary, await freePort());
  // Synchronous replication, as a high-availability setup runs it: a commit is answered
  // once the replica has it, so a failover loses no acknowledged commit.
  await primary.query("alter system set synchronous_standby_names = '*'");
  await primary.query("select pg_reload_conf()");
  current = primary;
  proxy = await FaultProxy.start(upstreamOf(primary));
  const databaseUrl = proxy.urlFor(primary.url(DATABASE));
  const common = { DATABASE_URL: databaseUrl, DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS) };
  const port = await freePort();
  api = await spawnApi(prefix, port, common);
  apiBase = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 2; i++) {
    const metricsPort = await freePort();
    const proc = await spawnWorker(prefix, {
      ...common,
      WORKER_METRICS_PORT: String(metricsPort),
      // Jobs whose worker lost its reply come back within the test's patience.
      LOCK_DURATION_MS: "15000",
      STALLED_INTERVAL_MS: "5000",
    });
    workers.push({ proc, pid: proc.proc.pid!, metrics: `http://127.0.0.1:${metricsPort}` });
  }
  writers.start(6);
  await writers.growBy(50, "warm-up");
}, 120_000);

afterAll(async () => {
  writers.abandon();
  proxy?.pass();
  await Promise.all([api?.stop(), ...workers.map((w) => w.proc.stop())]);
  await proxy?.close();
  await Promise.all([primary?.remove(), replica?.remove()]);
  console.log(`PostgreSQL faults:\n  ${figures.join("\n  ")}`);
});

describe("faults between the processes and PostgreSQL", () => {
  it("200 ms of latency each way slows the writes but loses none", async () => {
    proxy.set({ kind: "latency", ms: 200 });
    await writers.growBy(20, "writes under latency");
    const appliedMs = await allApplied("under latency");
    proxy.pass();
    figures.push(`200 ms latency: every write applied under it, ${appliedMs} ms after the last check began`);
  }, 120_000);

  it("a 10 s stall of every connection is ridden out", async () => {
    const started = Date.now();
    proxy.set({ kind: "stall" });
    await sleep(10_000);
    proxy.pass();
    const ended = Date.now();
    await writers.growBy(10, "writes after the stall");
    await allApplied("after the stall");
    figures.push(`10 s stall (${ended - started} ms): everything applied ${Date.now() - ended} ms after it ended`);
  }, 120_000);

  it("a reset of every connection mid-statement is ridden out", async () => {
    const started = Date.now();
    proxy.resetAll();
    await writers.growBy(10, "writes after the reset");
    await allApplied("after the reset");
    figures.push(`reset of every connection: everything applied within ${Date.now() - started} ms`);
  }, 120_000);

  it("connections that fall into a black hole are given up: /readyz says PostgreSQL is down, and all recovers once it ends", async () => {
    const started = Date.now();
    proxy.set({ kind: "blackhole" });
    await waitFor(async () => (await readiness())?.checks?.postgres === "down", 20_000, "API /readyz: postgres down");
    const detectedMs = Date.now() - started;
    const body = await readiness();
    expect(body).toMatchObject({ status: 503, checks: { postgres: "down", redis: "up" } });
    // Writes go on being accepted: they wait in Redis.
    await writers.growBy(10, "writes during the black hole");
    await sleep(Math.max(0, 12_000 - (Date.now() - started)));
    proxy.pass();
    const ended = Date.now();
    await waitFor(async () => (await readiness())?.status === "ready", RECOVERY_BOUND_MS, "API ready after the black hole");
    const readyMs = Date.now() - ended;
    await writers.growBy(10, "writes after the black hole");
    await allApplied("after the black hole");
    figures.push(
      `black hole (${ended - started} ms): /readyz postgres down after ${detectedMs} ms; ready ${readyMs} ms and everything applied ${Date.now() - ended} ms after it ended`,
    );
  }, 180_000);

  it("a fast shutdown and start of the server under load: workers resume by themselves", async () => {
    await writers.growBy(10, "writes before the restart");
    const started = Date.now();
    await primary.stop("fast");
    await writers.growBy(10, "writes while the server is down");
    await primary.start();
    const up = Date.now();
    await writers.growBy(10, "writes after the restart");
    await allApplied("after the restart");
    figures.push(`fast shutdown, down ${up - started} ms, start: everything applied ${Date.now() - up} ms after it was back`);
  }, 180_000);

  it("a failover to the promoted replica: open transactions on the old primary fail, workers resume on the new one", async () => {
    await writers.growBy(10, "writes before the failover");
    const started = Date.now();
    // The primary crashes: transactions open on it end without a commit.
    await primary.stop("immediate");
    await replica.promote();
    current = replica;
    // The address the apps use now leads to the promoted server.
    proxy.setUpstream(upstreamOf(replica));
    proxy.resetAll();
    const promoted = Date.now();
    await writers.growBy(20, "writes after the failover");
    const appliedMs = await allApplied("after the failover");
    figures.push(`failover (crash, promote, switch: ${promoted - started} ms): everything applied ${appliedMs} ms later`);
  }, 180_000);

  it("every accepted write is applied exactly once, and no process of ours was restarted", async () => {
    await writers.stop();
    await allApplied("at the end");
    const tally = KeyedWriters.tally(writers.accepted, await productRows());
    figures.push(`${tally.accepted} writes accepted: ${tally.lost.length} lost, ${tally.doubled.length} doubled, ${tally.unannounced} applied without a 202 seen`);
    expect(writers.unexpected).toEqual([]);
    expect(tally.lost).toEqual([]);
    expect(tally.doubled).toEqual([]);
    expect(tally.unannounced).toBe(0);
    for (const w of workers) {
      expect(w.proc.proc.exitCode).toBeNull();
      expect(w.proc.proc.pid).toBe(w.pid);
    }
    expect(api.proc.exitCode).toBeNull();
  }, 120_000);
});
