// The catalog cache's key scheme: resources, their keys and the versions in them.
import { randomBytes } from "node:crypto";

/** One cacheable read of the catalog. */
export type Resource =
  | { kind: "product" | "styles" | "related"; id: number }
  | { kind: "list"; page: number; count: number };

export const DEFAULT_CACHE_PREFIX = "ingest:cache";

// Version keys outlive the entries they guard; if one expires anyway (or an LRU cache
// Redis evicts it) the next reader writes a fresh random version, which only costs misses.
export const VERSION_TTL_S = 24 * 3_600;

/** The local name of a resource, also its in-process cache key: "product:5", "list:1:5". */
export function resourceKey(r: Resource): string {
  return r.kind === "list" ? `list:${r.page}:${r.count}` : `${r.kind}:${r.id}`;
}

// The shape of the cached answers. Bumped whenever what a read answers changes, so the
// entries cached before are never served again (they expire on their own), and API
// processes of two releases side by side during a deploy each read their own.
// 2: a style without photos or skus answers the original API's placeholders.
const ENTRY_SHAPE = 2;

/**
 * Key scheme. Every entry key carries the global catalog version and the version of
 * the data it was read from (the product's, or the list's), both read BEFORE the query:
 * a read that races with an invalidation writes its old value under the old versions,
 * where no later reader looks. Versions are random tokens, never counters, so a version
 * key that expired or was evicted cannot come back with a value an old entry still uses.
 */
export function catalogKeys(prefix: string) {
  return {
    channel: `${prefix}:invalidate`,
    globalVersion: `${prefix}:ver:all`,
    listVersion: `${prefix}:ver:list`,
    productVersion: (id: number) => `${prefix}:ver:p:${id}`,
    versionOf(r: Resource): string {
      return r.kind === "list" ? this.listVersion : this.productVersion(r.id);
    },
    entry: (r: Resource, versions: string) => `${prefix}:e${ENTRY_SHAPE}:${versions}:${resourceKey(r)}`,
    lock: (entryKey: string) => `${entryKey}:lock`,
  };
}

export function newVersion(): string {
  return `${Date.now().toString(36)}${randomBytes(4).toString("hex")}`;
}

/** What an invalidation tells every API process to drop from its in-process cache. */
export type InvalidationMessage = { ids: number[] } | { all: true };
