// The in-process cache of catalog answers, bounded by entries and bytes.
import { LRUCache } from "lru-cache";
import type { Entry } from "./entry.js";

export type LocalStore = {
  get(rk: string): Entry | undefined;
  set(rk: string, entry: Entry): void;
  delete(rk: string): void;
  clearLists(): void;
  clear(): void;
  /** Copies are kept only while invalidations can reach this process (pub/sub live). */
  setLive(live: boolean): void;
  readonly size: number;
};

// Fixed overhead per entry beside its body (key, object, LRU bookkeeping).
const ENTRY_OVERHEAD = 200;

/**
 * The in-process copy in front of Redis: bounded by entries and bytes, short-lived.
 * Pub/sub evicts a product's entries when a worker commits a write to it; the short TTL
 * bounds how long a copy can outlive a message this process missed. List pages change
 * with any product, so they live apart and are dropped together.
 */
export function createLocalStore(opts: { ttlMs: number; maxEntries: number; maxBytes: number }): LocalStore {
  const enabled = opts.ttlMs > 0;
  const make = (max: number, maxSize: number) =>
    new LRUCache<string, Entry>({ max, maxSize, ttl: Math.max(opts.ttlMs, 1), sizeCalculation: (e) => e.body.length + ENTRY_OVERHEAD });
  const items = make(opts.maxEntries, opts.maxBytes);
  const lists = make(1_000, Math.max(Math.floor(opts.maxBytes / 8), 1));
  const storeOf = (rk: string) => (rk.startsWith("list:") ? lists : items);
  let live = false;

  return {
    get: (rk) => (enabled && live ? storeOf(rk).get(rk) : undefined),
    set(rk, entry) {
      if (enabled && live) storeOf(rk).set(rk, entry);
    },
    delete: (rk) => void storeOf(rk).delete(rk),
    clearLists: () => lists.clear(),
    clear() {
      items.clear();
      lists.clear();
    },
    setLive(next) {
      items.clear();
      lists.clear();
      live = next;
    },
    get size() {
      return items.size + lists.size;
    },
  };
}
