// How full a process's PostgreSQL pools are, as Prometheus gauges read at scrape time:
// a pool whose connections are all busy with clients waiting is where latency comes from.
import type pg from "pg";
import client from "prom-client";

/** pools is read at each scrape: a pool opened later is added to it by name. */
export function registerPoolMetrics(registry: client.Registry, pools: Record<string, pg.Pool>): void {
  const registers = [registry];
  const entries = () => Object.entries(pools);
  new client.Gauge({
    name: "ingest_db_pool_connections",
    help: "Connections of the process's PostgreSQL pool by state (busy: checked out by a query or transaction; idle: open and free)",
    labelNames: ["pool", "state"] as const,
    registers,
    collect() {
      for (const [pool, p] of entries()) {
        this.set({ pool, state: "busy" }, p.totalCount - p.idleCount);
        this.set({ pool, state: "idle" }, p.idleCount);
      }
    },
  });
  new client.Gauge({
    name: "ingest_db_pool_max_connections",
    help: "Connections the process's PostgreSQL pool may open",
    labelNames: ["pool"] as const,
    registers,
    collect() {
      for (const [pool, p] of entries()) this.set({ pool }, p.options.max ?? 10);
    },
  });
  new client.Gauge({
    name: "ingest_db_pool_waiting_requests",
    help: "Queries waiting for a connection of the process's PostgreSQL pool (all busy)",
    labelNames: ["pool"] as const,
    registers,
    collect() {
      for (const [pool, p] of entries()) this.set({ pool }, p.waitingCount);
    },
  });
}
