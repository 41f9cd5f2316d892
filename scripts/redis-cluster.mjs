// A private Redis Cluster on loopback, for the tests and the bench: masters with one
// replica each, started from the machine's redis-server on free ports in a temp dir and
// joined with `redis-cli --cluster create`. Stopped (SIGKILL, dir removed) by stop(),
// and at the latest when this process exits.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";

/** Whether this machine can start a cluster of its own (redis-server and redis-cli on PATH). */
export function clusterBinariesFound() {
  return ["redis-server", "redis-cli"].every((bin) => spawnSync(bin, ["--version"], { stdio: "ignore" }).status === 0);
}

const listens = (port) =>
  new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });

/** A free port whose cluster bus port (port + 10000) is free too. */
async function freeClusterPort(taken) {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if (taken.has(port) || taken.has(port + 10_000) || taken.has(port - 10_000)) continue;
    if ((await listens(port)) && (await listens(port + 10_000))) {
      taken.add(port);
      return port;
    }
  }
}

/** One command on one node over a short-lived connection. */
export async function nodeCommand(port, fn) {
  const r = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 2_000, commandTimeout: 2_000 });
  r.on("error", () => {});
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

async function until(check, timeoutMs, label) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}`);
    await sleep(100);
  }
}

/**
 * Starts the cluster and resolves once every node agrees it is up and every replica
 * streams from its master. nodeTimeoutMs is long by default: on a busy machine a short
 * one fails masters over that are only slow, which may drop writes they acknowledged.
 */
export async function startRedisCluster({ masters = 3, nodeTimeoutMs = 15_000 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "ingest-cluster-"));
  const procs = [];
  const ports = [];
  const killSync = () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  // A process exit that skips stop() (an uncaught throw, Ctrl-C) still takes the servers along.
  process.once("exit", killSync);
  let stopped;
  const stop = () =>
    (stopped ??= (async () => {
      process.off("exit", killSync);
      await Promise.all(
        procs.map((p) => {
          if (p.exitCode !== null || p.signalCode !== null) return undefined;
          const exited = new Promise((resolve) => p.once("exit", resolve));
          p.kill("SIGKILL");
          return exited;
        }),
      );
      rmSync(dir, { recursive: true, force: true });
    })());
  try {
    const taken = new Set();
    for (let i = 0; i < masters * 2; i++) ports.push(await freeClusterPort(taken));
    for (const port of ports) {
      const proc = spawn(
        "redis-server",
        [
          "--port", String(port), "--bind", "127.0.0.1", "--dir", dir,
          "--cluster-enabled", "yes", "--cluster-config-file", `nodes-${port}.conf`, "--cluster-node-timeout", String(nodeTimeoutMs),
          "--appendonly", "no", "--save", "", "--maxmemory-policy", "noeviction",
        ],
        { stdio: "ignore" },
      );
      proc.on("error", () => {});
      procs.push(proc);
    }
    const ping = async (port) => (await nodeCommand(port, (r) => r.ping())) === "PONG";
    await Promise.all(ports.map((port) => until(() => ping(port), 10_000, `redis-server on ${port}`)));
    const created = spawnSync(
      "redis-cli",
      ["--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", "1", "--cluster-yes"],
      { encoding: "utf8", timeout: 30_000 },
    );
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${created.stdout}\n${created.stderr}`);
    // (Half the nodes are replicas: until each has taken its role, a check of the others passes vacuously.)
    await until(
      async () => {
        let replicas = 0;
        for (const port of ports) {
          const info = await nodeCommand(port, (r) => r.cluster("INFO"));
          if (!/cluster_state:ok/.test(info) || !new RegExp(`cluster_known_nodes:${ports.length}\\b`).test(info)) return false;
          const repl = await nodeCommand(port, (r) => r.info("replication"));
          if (/role:slave/.test(repl) && !/master_link_status:up/.test(repl)) return false;
          if (/role:slave/.test(repl)) replicas++;
        }
        return replicas === masters;
      },
      20_000,
      "cluster_state:ok on every node, every replica streaming",
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const nodes = ports.map((port) => ({ host: "127.0.0.1", port }));
  return {
    ports,
    nodes,
    nodesEnv: nodes.map((n) => `${n.host}:${n.port}`).join(","),
    async masterOf(key) {
      const slot = Number(await nodeCommand(ports[0], (r) => r.cluster("KEYSLOT", key)));
      const slots = await nodeCommand(ports[0], (r) => r.cluster("SLOTS"));
      const hit = slots.find(([a, b]) => slot >= a && slot <= b);
      return hit ? `${hit[2][0]}:${hit[2][1]}` : undefined;
    },
    signal(port, signal) {
      procs[ports.indexOf(port)]?.kill(signal);
    },
    stop,
  };
}
