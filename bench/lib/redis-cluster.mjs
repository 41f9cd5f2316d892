// A private Redis Cluster for `--only scaling`: 3 masters with one replica each, started
// from the machine's redis-server on free loopback ports in a temp dir and joined with
// `redis-cli --cluster create`, as test/support/redis-cluster.ts does for the tests.
// Stopped (SIGKILL, dir removed) by stop(), at teardown (failure, Ctrl-C) and at exit.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { onTeardown, waitFor } from "./processes.mjs";

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
async function command(port, fn) {
  const r = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 2_000, commandTimeout: 2_000 });
  r.on("error", () => {});
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

/** Starts the cluster; resolves with its seed nodes and a stop(). */
export async function startRedisCluster({ masters = 3 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "ingest-bench-cluster-"));
  const procs = [];
  let stopped;
  const killSync = () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  // A process exit that skips teardown (an uncaught throw) still takes the servers along.
  process.once("exit", killSync);
  const stop = () =>
    (stopped ??= (async () => {
      unregister();
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
  const unregister = onTeardown(stop);
  try {
    const taken = new Set();
    const ports = [];
    for (let i = 0; i < masters * 2; i++) ports.push(await freeClusterPort(taken));
    for (const port of ports) {
      const proc = spawn(
        "redis-server",
        [
          "--port", String(port), "--bind", "127.0.0.1", "--dir", dir,
          "--cluster-enabled", "yes", "--cluster-config-file", `nodes-${port}.conf`, "--cluster-node-timeout", "15000",
          "--appendonly", "no", "--save", "", "--maxmemory-policy", "noeviction",
        ],
        { stdio: "ignore" },
      );
      proc.on("error", () => {});
      procs.push(proc);
    }
    const ping = async (port) => (await command(port, (r) => r.ping())) === "PONG";
    await Promise.all(ports.map((port) => waitFor(() => ping(port), { timeoutMs: 10_000, label: `redis-server on ${port}` })));
    const created = spawnSync(
      "redis-cli",
      ["--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", "1", "--cluster-yes"],
      { encoding: "utf8", timeout: 30_000 },
    );
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${created.stdout}\n${created.stderr}`);
    // (Half the nodes are replicas: until each has taken its role, a check of the others passes vacuously.)
    await waitFor(
      async () => {
        let replicas = 0;
        for (const port of ports) {
          const info = await command(port, (r) => r.cluster("INFO"));
          if (!/cluster_state:ok/.test(info) || !new RegExp(`cluster_known_nodes:${ports.length}\\b`).test(info)) return false;
          const repl = await command(port, (r) => r.info("replication"));
          if (/role:slave/.test(repl) && !/master_link_status:up/.test(repl)) return false;
          if (/role:slave/.test(repl)) replicas++;
        }
        return replicas === masters;
      },
      { timeoutMs: 20_000, label: "cluster_state:ok on every node, every replica streaming" },
    );
    const nodes = ports.map((port) => ({ host: "127.0.0.1", port }));
    return {
      nodes,
      /** "127.0.0.1:p1,…": the value of REDIS_CLUSTER_NODES. */
      nodesEnv: nodes.map((n) => `${n.host}:${n.port}`).join(","),
      /** The master serving a key's slot, as host:port. */
      async masterOf(key) {
        const slot = Number(await command(ports[0], (r) => r.cluster("KEYSLOT", key)));
        const slots = await command(ports[0], (r) => r.cluster("SLOTS"));
        const hit = slots.find(([a, b]) => slot >= a && slot <= b);
        return hit ? `${hit[2][0]}:${hit[2][1]}` : undefined;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
