// Invalidates the cached catalog reads of the products a write committed, retrying while the cache Redis is away.
import { setTimeout as sleep } from "node:timers/promises";
import type { CatalogInvalidator } from "@ingest/catalog";
import type { RedisClient } from "@ingest/redis";
import type { Logger } from "./logger.js";

export type CommitInvalidation = {
  /** After writes to these products committed: drops every cached read they changed. Never throws. */
  afterCommit(productIds: number[]): Promise<void>;
  close(): Promise<void>;
};

const ATTEMPTS = 3;
// After a failed invalidation, jobs skip the inline tries for this long and leave
// their ids to the background flush: a dead cache must not slow every job down.
const BACKOFF_MS = 5_000;
const FLUSH_EVERY_MS = 1_000;
// Beyond this many pending ids, one global invalidation is cheaper than remembering them.
const MAX_PENDING = 100_000;

/**
 * Runs between the commit and the job's "completed", so the next read after completion
 * misses the cache. When the cache Redis does not answer (three quick tries, each
 * bounded by the connection's command timeout) the job still completes: the ids are
 * kept and retried every second until Redis answers. Until then a cached entry can be
 * served for at most its TTL (then one stale answer while it refreshes). A cache Redis
 * that restarted lost its entries anyway; the risk is a Redis the API reaches and the
 * worker does not, and the in-memory retry dies with the process.
 */
export function createCommitInvalidation(invalidator: CatalogInvalidator, redis: RedisClient, log: Logger): CommitInvalidation {
  const pending = new Set<number>();
  let pendingAll = false;
  let skipUntil = 0;
  let flushing: Promise<void> | undefined;

  const remember = (ids: number[]) => {
    for (const id of ids) pending.add(id);
    if (pending.size > MAX_PENDING) {
      pending.clear();
      pendingAll = true;
    }
  };

  const flush = () =>
    (flushing ??= (async () => {
      if (redis.status !== "ready" || (!pendingAll && pending.size === 0)) return;
      const ids = [...pending];
      const all = pendingAll;
      pending.clear();
      pendingAll = false;
      try {
        if (all) await invalidator.all();
        else await invalidator.products(ids);
        log.info({ products: all ? "all" : ids.length }, "delayed cache invalidation done");
      } catch (err) {
        if (all) pendingAll = true;
        else remember(ids);
        log.debug({ err }, "delayed cache invalidation failed; will retry");
      }
    })().finally(() => (flushing = undefined)));

  const timer = setInterval(() => void flush(), FLUSH_EVERY_MS);
  timer.unref();
  redis.on("ready", () => void flush());

  return {
    async afterCommit(productIds) {
      const ids = [...new Set(productIds)];
      if (ids.length === 0) return;
      if (redis.status === "ready" && Date.now() >= skipUntil) {
        for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
          try {
            await invalidator.products(ids);
            return;
          } catch (err) {
            if (attempt === ATTEMPTS) log.warn({ err, productIds: ids }, "cache invalidation failed; retrying in the background");
            else await sleep(20 * attempt);
          }
        }
        skipUntil = Date.now() + BACKOFF_MS;
      }
      remember(ids);
    },
    async close() {
      clearInterval(timer);
      await flush();
    },
  };
}
