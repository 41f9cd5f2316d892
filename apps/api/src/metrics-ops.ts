// The figures operators alert on that are not counted on the request path: how old the
// oldest waiting job of each queue is, how many workers consume it, how full the queue
// Redis is, and whether the API is ready. Read from Redis at scrape time, bounded.
import { withTimeout } from "@ingest/runtime";
import type { Queues } from "@ingest/jobs";
import client from "prom-client";

// A slow Redis must not hang the scrape: without an answer a series is left out.
const SCRAPE_TIMEOUT_MS = 1_000;

export type OpsSources = {
  /** used_memory and maxmemory of the queue Redis (INFO memory). */
  redisMemory?: () => Promise<{ used: number; max: number }>;
  /** Whether the process would answer /readyz with 200. */
  ready?: () => Promise<boolean>;
};

export function registerOpsMetrics(registry: client.Registry, queues: Queues, sources: OpsSources): void {
  const registers = [registry];
  const perQueue = <T>(read: (queue: Queues[keyof Queues]) => Promise<T>) =>
    withTimeout(Promise.all(Object.entries(queues).map(async ([name, q]) => [name, await read(q)] as const)), SCRAPE_TIMEOUT_MS);

  new client.Gauge({
    name: "ingest_queue_oldest_waiting_age_seconds",
    help: "Age of the oldest job waiting in each queue (0: none waits), fleet-wide from Redis",
    labelNames: ["queue"] as const,
    // Every API process reads the same figure: across processes it is taken once, not summed.
    aggregator: "max",
    registers,
    async collect() {
      this.reset();
      const now = Date.now();
      const oldest = await perQueue((q) => q.getJobs(["waiting"], 0, 0, true)).catch(() => []);
      for (const [queue, jobs] of oldest) this.set({ queue }, jobs[0] ? Math.max(0, now - jobs[0].timestamp) / 1_000 : 0);
    },
  });
  new client.Gauge({
    name: "ingest_queue_workers",
    help: "Worker instances consuming each queue (BullMQ's named connections in CLIENT LIST), fleet-wide",
    labelNames: ["queue"] as const,
    aggregator: "max",
    registers,
    async collect() {
      this.reset();
      const counts = await perQueue((q) => q.getWorkersCount()).catch(() => []);
      for (const [queue, n] of counts) this.set({ queue }, n);
    },
  });
  if (sources.redisMemory) {
    const read = sources.redisMemory;
    let last: Promise<{ used: number; max: number } | undefined> | undefined;
    // Both gauges of one scrape share one INFO.
    const memory = () => (last ??= withTimeout(read(), SCRAPE_TIMEOUT_MS).catch(() => undefined).finally(() => setImmediate(() => (last = undefined))));
    const gauges = [
      { name: "ingest_redis_memory_used_bytes", help: "Memory the queue Redis uses (INFO used_memory)", field: "used" },
      { name: "ingest_redis_memory_max_bytes", help: "The queue Redis's maxmemory (0: no limit set)", field: "max" },
    ] as const;
    for (const { name, help, field } of gauges) {
      new client.Gauge({
        name,
        help,
        aggregator: "max",
        registers,
        async collect() {
          this.reset();
          const m = await memory();
          if (m) this.set(m[field]);
        },
      });
    }
  }
  if (sources.ready) {
    const ready = sources.ready;
    new client.Gauge({
      name: "ingest_ready",
      help: "1 while the API answers /readyz with 200 (Redis and PostgreSQL answer, not draining); the least ready API process",
      aggregator: "min",
      registers,
      async collect() {
        this.set((await ready().catch(() => false)) ? 1 : 0);
      },
    });
  }
}
