// The tests' handle on a private Redis Cluster (scripts/redis-cluster.mjs starts it): its
// topology, and the failovers, freezes and key counts the cluster tests need.
import type { Redis } from "ioredis";
import { nodeCommand, startRedisCluster, type RedisCluster } from "../../scripts/redis-cluster.mjs";
import { waitFor } from "./harness.js";

export { clusterBinariesFound } from "../../scripts/redis-cluster.mjs";

type ClusterNodeInfo = { id: string; addr: string; port: number; role: "master" | "replica"; masterId?: string; slots: [number, number][] };

/** A throwaway Redis Cluster on loopback: masters with one replica each. */
export class PrivateRedisCluster {
  private cluster: RedisCluster | undefined;

  constructor(
    private readonly masters = 3,
    /** A test of an automatic takeover shortens it for itself (setNodeTimeout). */
    private readonly nodeTimeoutMs = 15_000,
  ) {}

  get ports(): number[] {
    return this.cluster?.ports ?? [];
  }

  /** "127.0.0.1:p1,127.0.0.1:p2,…": the value for REDIS_CLUSTER_NODES. */
  get nodesEnv(): string {
    return this.cluster?.nodesEnv ?? "";
  }

  async start(): Promise<void> {
    this.cluster = await startRedisCluster({ masters: this.masters, nodeTimeoutMs: this.nodeTimeoutMs });
  }

  /** One command on one node over a short-lived connection. */
  command<T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T> {
    return nodeCommand(port, fn);
  }

  /** Changes cluster-node-timeout on every node, at run time. */
  async setNodeTimeout(ms: number): Promise<void> {
    await Promise.all(this.ports.map((port) => this.command(port, (r) => r.config("SET", "cluster-node-timeout", String(ms)))));
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
    this.cluster?.signal(port, "SIGSTOP");
  }

  resume(port: number): void {
    this.cluster?.signal(port, "SIGCONT");
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

  /**
   * Keys matching the pattern on each master (SCAN is per node on a cluster). Each node
   * says itself whether it is a master: one node's CLUSTER NODES can still list a fresh
   * replica as a master on a busy machine, and its copies of the keys would count.
   */
  async keysPerMaster(pattern: string): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const node of await this.nodes()) {
      const role = (await this.command(node.port, (r) => r.role())) as unknown[];
      if (role[0] !== "master") continue;
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
    await this.cluster?.stop();
  }
}
