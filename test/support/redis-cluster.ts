import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { waitFor } from "./harness.js";

/** Whether this machine can start a cluster of its own (redis-server and redis-cli on PATH). */
export function clusterBinariesFound(): boolean {
  return ["redis-server", "redis-cli"].every((bin) => spawnSync(bin, ["--version"], { stdio: "ignore" }).status === 0);
}

const listens = (port: number) =>
  new Promise<boolean>((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });

/** A free port whose cluster bus port (port + 10000) is free too. */
async function freeClusterPort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if (taken.has(port) || taken.has(port + 10_000) || taken.has(port - 10_000)) continue;
    if ((await listens(port)) && (await listens(port + 10_000))) {
      taken.add(port);
      return port;
    }
  }
}

export type ClusterNodeInfo = { id: string; addr: string; port: number; role: "master" | "replica"; masterId?: string; slots: [number, number][] };

/**
 * A throwaway Redis Cluster on loopback: masters with one replica each, started from
 * the machine's redis-server and joined with `redis-cli --cluster create`.
 */
export class PrivateRedisCluster {
  readonly ports: number[] = [];
  private readonly procs: ChildProcess[] = [];
  private dir: string | undefined;

  constructor(
    private readonly masters = 3,
    /**
     * How long a master may not answer before its replica takes over on its own. Long
     * by default: on a busy test machine a short one fails masters over that are only
     * slow, and such an unplanned failover may drop writes the master had acknowledged.
     * A test of that takeover shortens it for itself (setNodeTimeout).
     */
    private readonly nodeTimeoutMs = 15_000,
  ) {}

  /** "127.0.0.1:p1,127.0.0.1:p2,…": the value for REDIS_CLUSTER_NODES. */
  get nodesEnv(): string {
    return this.ports.map((p) => `127.0.0.1:${p}`).join(",");
  }

  async start(): Promise<void> {
    this.dir = mkdtempSync(join(tmpdir(), "ingest-cluster-"));
    const taken = new Set<number>();
    for (let i = 0; i < this.masters * 2; i++) this.ports.push(await freeClusterPort(taken));
    for (const port of this.ports) {
      const proc = spawn(
        "redis-server",
        [
          "--port", String(port), "--bind", "127.0.0.1", "--dir", this.dir,
          "--cluster-enabled", "yes", "--cluster-config-file", `nodes-${port}.conf`, "--cluster-node-timeout", String(this.nodeTimeoutMs),
          "--appendonly", "no", "--save", "", "--maxmemory-policy", "noeviction",
        ],
        { stdio: "ignore" },
      );
      this.procs.push(proc);
    }
    await Promise.all(this.ports.map((port) => waitFor(() => this.ping(port), 10_000, `redis-server on ${port}`)));
    const created = spawnSync(
      "redis-cli",
      ["--cluster", "create", ...this.ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", "1", "--cluster-yes"],
      { encoding: "utf8", timeout: 30_000 },
    );
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${created.stdout}\n${created.stderr}`);
    // Every node agrees the cluster is up, and every replica streams from its master.
    // (Half the nodes are replicas: until each has taken its role, a check of the others passes vacuously.)
    await waitFor(async () => {
      let replicas = 0;
      for (const port of this.ports) {
        const info = await this.command(port, (r) => r.cluster("INFO"));
        if (!/cluster_state:ok/.test(info) || !new RegExp(`cluster_known_nodes:${this.ports.length}\\b`).test(info)) return false;
        const repl = await this.command(port, (r) => r.info("replication"));
        if (/role:slave/.test(repl) && !/master_link_status:up/.test(repl)) return false;
        if (/role:slave/.test(repl)) replicas++;
      }
      return replicas === this.ports.length / 2;
    }, 20_000, "cluster_state:ok on every node, every replica streaming");
  }

  /** One command on one node over a short-lived connection. */
  async command<T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T> {
    const r = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 2_000, commandTimeout: 2_000 });
    r.on("error", () => {});
    try {
      await r.connect();
      return await fn(r);
    } finally {
      r.disconnect();
    }
  }

  /** Changes cluster-node-timeout on every node, at run time. */
  async setNodeTimeout(ms: number): Promise<void> {
    await Promise.all(this.ports.map((port) => this.command(port, (r) => r.config("SET", "cluster-node-timeout", String(ms)))));
  }

  private async ping(port: number): Promise<boolean> {
    try {
      return (await this.command(port, (r) => r.ping())) === "PONG";
    } catch {
      return false;
    }
  }

  async nodes(): Promise<ClusterNodeInfo[]> {
    // Any node that answers (one may be frozen).
    const raw = (await Promise.any(this.ports.map((port) => this.command(port, (r) => r.cluster("NODES"))))) as string;
    return raw
      .trim()
      .split("\n")
      .map((line) => {
        const [id, addr, flags, master, , , , , ...slots] = line.split(" ");
        const hostPort = addr!.split("@")[0]!;
        return {
          id: id!,
          addr: hostPort,
          port: Number(hostPort.split(":")[1]),
          role: flags!.includes("master") ? "master" : "replica",
          ...(master && master !== "-" ? { masterId: master } : {}),
          slots: slots
            .filter((s) => /^\d+(-\d+)?$/.test(s))
            .map((s) => {
              const [a, b] = s.split("-").map(Number);
              return [a!, b ?? a!] as [number, number];
            }),
        };
      });
  }

  /** The master that serves the slot of this key (a hash tag such as "{ingest}"), and its replica. */
  async ownerOf(key: string): Promise<{ slot: number; master: ClusterNodeInfo; replica: ClusterNodeInfo }> {
    const slot = Number(await Promise.any(this.ports.map((port) => this.command(port, (r) => r.cluster("KEYSLOT", key)))));
    // The node asked may not have heard the latest topology yet (after a failover): ask again for a while.
    let found: { master?: ClusterNodeInfo; replica?: ClusterNodeInfo } = {};
    await waitFor(async () => {
      const nodes = await this.nodes();
      const master = nodes.find((n) => n.role === "master" && n.slots.some(([a, b]) => slot >= a && slot <= b));
      const replica = nodes.find((n) => n.role === "replica" && n.masterId === master?.id);
      found = { master, replica };
      return master && replica;
    }, 10_000, `a master with a replica for slot ${slot}`);
    return { slot, master: found.master!, replica: found.replica! };
  }

  /**
   * A manual failover (CLUSTER FAILOVER on the replica): the master stops taking
   * writes, the replica catches up and takes over; resolves once every node has seen it.
   */
  async failover(replica: ClusterNodeInfo, slot: number): Promise<void> {
    await this.command(replica.port, (r) => r.cluster("FAILOVER"));
    await waitFor(async () => {
      const role = (await this.command(replica.port, (r) => r.role())) as unknown[];
      if (role[0] !== "master") return false;
      const nodes = await this.nodes();
      return nodes.find((n) => n.id === replica.id)?.slots.some(([a, b]) => slot >= a && slot <= b) ?? false;
    }, 15_000, `replica ${replica.addr} to take over slot ${slot}`);
  }

  /** Freezes a node (SIGSTOP): its connections stay open and nothing answers, as a hung server. */
  pause(port: number): void {
    this.procs[this.ports.indexOf(port)]?.kill("SIGSTOP");
  }

  resume(port: number): void {
    this.procs[this.ports.indexOf(port)]?.kill("SIGCONT");
  }

  /** Resolves once this node serves the slot (after an automatic failover, say). */
  async waitUntilOwner(node: ClusterNodeInfo, slot: number, timeoutMs = 20_000): Promise<void> {
    await waitFor(async () => {
      try {
        const role = (await this.command(node.port, (r) => r.role())) as unknown[];
        return role[0] === "master";
      } catch {
        return false;
      }
    }, timeoutMs, `${node.addr} to take over slot ${slot}`);
  }

  /** Keys matching the pattern on each master (SCAN is per node on a cluster). */
  async keysPerMaster(pattern: string): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const node of (await this.nodes()).filter((n) => n.role === "master")) {
      const count = await this.command(node.port, async (r) => {
        let cursor = "0";
        let n = 0;
        do {
          const [next, keys] = await r.scan(cursor, "MATCH", pattern, "COUNT", 1000);
          n += keys.length;
          cursor = next;
        } while (cursor !== "0");
        return n;
      });
      out.set(node.addr, count);
    }
    return out;
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.procs.map((proc) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return undefined;
        const exited = new Promise((resolve) => proc.once("exit", resolve));
        proc.kill("SIGKILL");
        return exited;
      }),
    );
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
