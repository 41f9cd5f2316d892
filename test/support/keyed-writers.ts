// Clients for fault tests: each posts product writes one after another, every one with its
// own Idempotency-Key, retried with that key until the API answers 202, as a careful client
// does. At the end, the products' names say which writes were lost, doubled or applied unasked.
import { waitFor } from "./harness.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Tally = { accepted: number; lost: string[]; doubled: string[]; unannounced: number };

export class KeyedWriters {
  /** Every write a client sent until the API answered 202: name (= Idempotency-Key) → jobId. */
  readonly accepted = new Map<string, string>();
  /** Answers a careful client would not retry (anything but 202, 409, 429, 503). */
  readonly unexpected: string[] = [];
  private stopped = false;
  private paused = false;
  private abandoned = false;
  private clients: Promise<void>[] = [];

  constructor(
    private readonly apiBase: () => string,
    private readonly keyPrefix: string,
    private readonly category: string,
  ) {}

  start(clients: number): void {
    this.clients = Array.from({ length: clients }, (_, n) => this.client(n));
  }

  /** While paused, clients send nothing new (a write under way still finishes). */
  pause(paused: boolean): void {
    this.paused = paused;
  }

  /** Stops the clients once their writes under way are accepted. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.clients);
  }

  /** Stops at once: writes still retrying give up. */
  abandon(): void {
    this.stopped = true;
    this.abandoned = true;
  }

  /** Resolves once `more` further writes are accepted (so a fault has writes around it). */
  async growBy(more: number, label: string, timeoutMs = 60_000): Promise<void> {
    const target = this.accepted.size + more;
    await waitFor(() => this.accepted.size >= target, timeoutMs, `${label}: ${more} more writes accepted`);
  }

  /** The written products, counted by name; `rows` lists `{ name, n }` for this category. */
  static tally(accepted: Map<string, string>, rows: { name: string; n: number }[]): Tally {
    const byName = new Map(rows.map((r) => [r.name, r.n]));
    return {
      accepted: accepted.size,
      lost: [...accepted.keys()].filter((k) => !byName.has(k)),
      doubled: rows.filter((r) => r.n > 1).map((r) => r.name),
      // Every write is retried until accepted, so a row no client heard a 202 for is not expected either.
      unannounced: rows.filter((r) => !accepted.has(r.name)).length,
    };
  }

  private async client(n: number): Promise<void> {
    for (let i = 0; !this.stopped; i++) {
      await this.write(`${this.keyPrefix}-${n}-${i}`);
      await sleep(50);
      while (this.paused && !this.stopped) await sleep(50);
    }
  }

  private async write(key: string): Promise<void> {
    while (!this.abandoned) {
      try {
        const res = await fetch(`${this.apiBase()}/products`, {
          method: "POST",
          headers: { "content-type": "application/json", "idempotency-key": key },
          body: JSON.stringify({ name: key, category: this.category, default_price: "1.00" }),
          signal: AbortSignal.timeout(10_000),
        });
        const body = (await res.json().catch(() => ({}))) as { jobId?: string };
        if (res.status === 202 && body.jobId) {
          this.accepted.set(key, body.jobId);
          return;
        }
        if (![503, 409, 429].includes(res.status)) this.unexpected.push(`${key}: ${res.status}`);
      } catch {
        // timed out or cut: the same key again
      }
      await sleep(100 + Math.random() * 200);
    }
  }
}
