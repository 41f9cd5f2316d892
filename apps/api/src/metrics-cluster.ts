// /metrics with API_PROCESSES > 1: the process that takes a scrape asks the primary, which
// gathers every process's metrics over the cluster's IPC and sums them with prom-client's
// AggregatorRegistry; without it each scrape would see whichever process took the connection.
import cluster, { type Worker } from "node:cluster";
import { AggregatorRegistry, type Registry } from "prom-client";

// A process that has not answered by then fails the scrape: a sum without it would read
// as its counters going back to zero.
const GATHER_TIMEOUT_MS = 3_000;

type MetricsJson = Awaited<ReturnType<Registry["getMetricsAsJSON"]>>;
type Message =
  | { type: "ingest:metrics:ready" }
  | { type: "ingest:metrics:scrape"; id: number }
  | { type: "ingest:metrics:scraped"; id: number; text?: string; error?: string }
  | { type: "ingest:metrics:collect"; id: number }
  | { type: "ingest:metrics:collected"; id: number; metrics?: MetricsJson; error?: string };

const isMessage = (m: unknown): m is Message => typeof (m as Message | null)?.type === "string" && (m as Message).type.startsWith("ingest:metrics:");

/**
 * In an API process: answers the primary's requests for this registry, tells the primary
 * it may now be asked, and returns the scrape: the sum over all processes, from the primary.
 */
export function joinClusterMetrics(registry: Registry): () => Promise<string> {
  const waiting = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void }>();
  let next = 0;
  process.on("message", (message: unknown) => {
    if (!isMessage(message)) return;
    if (message.type === "ingest:metrics:collect") {
      registry.getMetricsAsJSON().then(
        (metrics) => process.send?.({ type: "ingest:metrics:collected", id: message.id, metrics } satisfies Message),
        (err: Error) => process.send?.({ type: "ingest:metrics:collected", id: message.id, error: err.message } satisfies Message),
      );
    } else if (message.type === "ingest:metrics:scraped") {
      const scrape = waiting.get(message.id);
      waiting.delete(message.id);
      if (message.text !== undefined) scrape?.resolve(message.text);
      else scrape?.reject(new Error(message.error ?? "no metrics"));
    }
  });
  // Asked only from now on: a process still starting has counted nothing yet.
  process.send?.({ type: "ingest:metrics:ready" } satisfies Message);

  return () =>
    new Promise<string>((resolve, reject) => {
      const id = next++;
      // The primary answers within its own timeout; this one covers a primary gone.
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error("the primary did not answer"));
      }, GATHER_TIMEOUT_MS + 1_000);
      waiting.set(id, {
        resolve: (text) => (clearTimeout(timer), resolve(text)),
        reject: (err) => (clearTimeout(timer), reject(err)),
      });
      process.send?.({ type: "ingest:metrics:scrape", id } satisfies Message);
    });
}

type Gathering = { waiting: Set<number>; results: MetricsJson[]; done: (err?: Error) => void };

/** In the primary: serves the processes' scrapes with the sum over every ready process. */
export function serveClusterMetrics(): void {
  const ready = new Set<number>();
  const gatherings = new Map<number, Gathering>();
  let next = 0;

  const send = (worker: Worker, message: Message) => {
    if (worker.isConnected()) worker.send(message);
  };
  const settle = (id: number, g: Gathering, err?: Error) => {
    gatherings.delete(id);
    g.done(err);
  };

  const gather = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const id = next++;
      const targets = [...ready].map((wid) => cluster.workers?.[wid]).filter((w): w is Worker => w?.isConnected() === true);
      const timer = setTimeout(() => {
        const g = gatherings.get(id);
        if (g) settle(id, g, new Error(`${g.waiting.size} API process(es) did not report their metrics in time`));
      }, GATHER_TIMEOUT_MS);
      const g: Gathering = {
        waiting: new Set(targets.map((w) => w.id)),
        results: [],
        done: (err) => {
          clearTimeout(timer);
          if (err) reject(err);
          else AggregatorRegistry.aggregate(g.results).metrics().then(resolve, reject);
        },
      };
      gatherings.set(id, g);
      for (const w of targets) send(w, { type: "ingest:metrics:collect", id });
      if (g.waiting.size === 0) settle(id, g);
    });

  cluster.on("message", (worker: Worker, message: unknown) => {
    if (!isMessage(message)) return;
    switch (message.type) {
      case "ingest:metrics:ready":
        ready.add(worker.id);
        break;
      case "ingest:metrics:scrape":
        gather().then(
          (text) => send(worker, { type: "ingest:metrics:scraped", id: message.id, text }),
          (err: Error) => send(worker, { type: "ingest:metrics:scraped", id: message.id, error: err.message }),
        );
        break;
      case "ingest:metrics:collected": {
        const g = gatherings.get(message.id);
        if (!g || !g.waiting.delete(worker.id)) break;
        if (message.metrics) g.results.push(message.metrics);
        else settle(message.id, g, new Error(message.error ?? "no metrics"));
        if (g.waiting.size === 0 && gatherings.has(message.id)) settle(message.id, g);
        break;
      }
    }
  });
  // A process that died takes its counts with it: the sum goes on without it.
  cluster.on("exit", (worker: Worker) => {
    ready.delete(worker.id);
    for (const [id, g] of gatherings) if (g.waiting.delete(worker.id) && g.waiting.size === 0) settle(id, g);
  });
}
