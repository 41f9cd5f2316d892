// Read-through over the two caches and PostgreSQL: one query in flight per key, stale answers while it refreshes.
import { setTimeout as sleep } from "node:timers/promises";
import { resourceKey, type InvalidationMessage, type Resource } from "@ingest/catalog";
import { makeEntry, type Entry } from "./entry.js";
import type { LocalStore } from "./local-store.js";
import type { RedisStore } from "./redis-store.js";

/** How a read was served: fresh from a cache, stale from a cache, from PostgreSQL, or without the cache. */
export type How = "HIT" | "STALE" | "MISS" | "BYPASS";
export type Served = { entry: Entry; how: How };

/** Neither the cache nor PostgreSQL could answer. */
export class CatalogUnavailableError extends Error {}

type ReadThroughOptions = {
  store: RedisStore;
  local: LocalStore;
  /** The JSON of the resource from PostgreSQL, undefined when there is no such product. */
  load: (r: Resource) => Promise<string | undefined>;
  ttlMs: number;
  staleMs: number;
  /** How long a process waits for another one that holds the fill lock. */
  waitMs?: number;
  log: { debug: (obj: object, msg: string) => void };
  now?: () => number;
};

type ReadThrough = {
  read(r: Resource): Promise<Served>;
  /** Drops in-process copies and makes loads in flight unable to store what they read. */
  evict(msg: InvalidationMessage): void;
  /** Resolves when background refreshes have settled. */
  idle(): Promise<void>;
  readonly stats: Record<"hit" | "stale" | "miss" | "bypass" | "localHits" | "joined" | "refreshes", number>;
};

// A load in flight: concurrent reads of one resource in this process share it.
// An invalidation marks it superseded, so its (possibly old) value never enters the
// in-process cache and later reads start their own load.
type Flight = { superseded: boolean };
type Shared = Flight & { promise: Promise<Served> };

const PRODUCT_KINDS = ["product", "styles", "related"] as const;

export function createReadThrough(o: ReadThroughOptions): ReadThrough {
  const now = o.now ?? Date.now;
  const waitMs = o.waitMs ?? 300;
  const inflight = new Map<string, Shared>();
  const refreshing = new Map<string, Flight>();
  const background = new Set<Promise<void>>();
  const stats = { hit: 0, stale: 0, miss: 0, bypass: 0, localHits: 0, joined: 0, refreshes: 0 };

  const state = (e: Entry) => {
    const age = now() - e.storedAt;
    return age < o.ttlMs ? "fresh" : age < o.ttlMs + o.staleMs ? "stale" : "expired";
  };
  const remember = (rk: string, entry: Entry, flight: Flight) => {
    if (!flight.superseded) o.local.set(rk, entry);
  };
  const loadEntry = async (r: Resource) => {
    const startedAt = now();
    return makeEntry(await o.load(r), startedAt);
  };

  function fromLocal(r: Resource, rk: string): Served | undefined {
    // A failing Redis may also mean missed invalidations: trust no copy then.
    const entry = o.store.healthy ? o.local.get(rk) : undefined;
    if (!entry) return undefined;
    const s = state(entry);
    if (s === "expired") return undefined;
    stats.localHits++;
    if (s === "stale") refresh(r, rk);
    return { entry, how: s === "fresh" ? "HIT" : "STALE" };
  }

  async function resolve(r: Resource, rk: string, flight: Flight): Promise<Served> {
    let key: string;
    let cached: Entry | undefined;
    try {
      key = await o.store.entryKey(r);
      cached = await o.store.get(key);
    } catch {
      return bypass(r);
    }
    const s = cached && state(cached);
    if (cached && s !== "expired") {
      remember(rk, cached, flight);
      if (s === "stale") refresh(r, rk, key);
      return { entry: cached, how: s === "fresh" ? "HIT" : "STALE" };
    }
    return fill(r, rk, key, flight, cached);
  }

  /** A miss: one process loads under the lock, the others wait briefly for its value. */
  async function fill(r: Resource, rk: string, key: string, flight: Flight, expired: Entry | undefined): Promise<Served> {
    let token: string | undefined;
    let cacheUp = true;
    try {
      token = await o.store.lock(key);
    } catch {
      cacheUp = false;
    }
    if (cacheUp && !token) {
      const filled = await waitForFill(key, expired?.storedAt ?? -Infinity);
      if (filled) {
        remember(rk, filled, flight);
        return { entry: filled, how: "HIT" };
      }
    }
    try {
      const entry = await loadEntry(r);
      if (cacheUp) await o.store.set(key, entry).catch(() => undefined);
      if (cacheUp) remember(rk, entry, flight);
      return { entry, how: cacheUp ? "MISS" : "BYPASS" };
    } catch (err) {
      // PostgreSQL is down: an old answer beats none, however old.
      if (expired) return { entry: expired, how: "STALE" };
      throw new CatalogUnavailableError("the catalog is unavailable", { cause: err });
    } finally {
      if (token) void o.store.unlock(key, token).catch(() => undefined);
    }
  }

  async function waitForFill(key: string, newerThan: number): Promise<Entry | undefined> {
    const deadline = now() + waitMs;
    for (let pause = 5; now() < deadline; pause = Math.min(pause * 2, 50)) {
      await sleep(Math.min(pause, Math.max(1, deadline - now())));
      const entry = await o.store.get(key).catch(() => null);
      if (entry === null) return undefined;
      if (entry && entry.storedAt > newerThan && state(entry) !== "expired") return entry;
    }
    return undefined;
  }

  async function bypass(r: Resource): Promise<Served> {
    try {
      return { entry: await loadEntry(r), how: "BYPASS" };
    } catch (err) {
      throw new CatalogUnavailableError("the catalog is unavailable", { cause: err });
    }
  }

  /** Stale-while-revalidate: one refresh per process, and per fleet through the lock. */
  function refresh(r: Resource, rk: string, knownKey?: string): void {
    if (refreshing.has(rk)) return;
    const flight: Flight = { superseded: false };
    refreshing.set(rk, flight);
    const task: Promise<void> = (async () => {
      const key = knownKey ?? (await o.store.entryKey(r));
      const token = await o.store.lock(key);
      if (!token) return; // another process is refreshing it
      try {
        stats.refreshes++;
        const entry = await loadEntry(r);
        await o.store.set(key, entry);
        remember(rk, entry, flight);
      } finally {
        void o.store.unlock(key, token).catch(() => undefined);
      }
    })()
      .catch((err: unknown) => o.log.debug({ err, resource: rk }, "background refresh failed"))
      .finally(() => {
        if (refreshing.get(rk) === flight) refreshing.delete(rk);
        background.delete(task);
      });
    background.add(task);
  }

  function supersede(match: (rk: string) => boolean): void {
    for (const map of [inflight, refreshing] as Map<string, Flight>[]) {
      for (const [rk, flight] of map) {
        if (!match(rk)) continue;
        flight.superseded = true;
        map.delete(rk);
      }
    }
  }

  return {
    async read(r) {
      const rk = resourceKey(r);
      let served = fromLocal(r, rk);
      if (!served) {
        let shared = inflight.get(rk);
        if (shared) stats.joined++;
        else {
          const flight = { superseded: false } as Shared;
          flight.promise = resolve(r, rk, flight).finally(() => {
            if (inflight.get(rk) === flight) inflight.delete(rk);
          });
          inflight.set(rk, flight);
          shared = flight;
        }
        served = await shared.promise;
      }
      stats[served.how === "HIT" ? "hit" : served.how === "STALE" ? "stale" : served.how === "MISS" ? "miss" : "bypass"]++;
      return served;
    },
    evict(msg) {
      if ("all" in msg) {
        o.local.clear();
        supersede(() => true);
        return;
      }
      const gone = new Set(msg.ids.flatMap((id) => PRODUCT_KINDS.map((kind) => resourceKey({ kind, id }))));
      for (const rk of gone) o.local.delete(rk);
      o.local.clearLists();
      supersede((rk) => gone.has(rk) || rk.startsWith("list:"));
    },
    async idle() {
      while (background.size) await Promise.allSettled([...background]);
    },
    stats,
  };
}
