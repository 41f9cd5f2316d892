// Invalidates cached catalog reads: bumps their versions in Redis and tells API processes to evict.
import type { RedisClient } from "@ingest/redis";
import { Cluster } from "ioredis";
import { catalogKeys, newVersion, VERSION_TTL_S, type InvalidationMessage } from "./keys.js";

export type CatalogInvalidator = {
  /** Makes every cached read of these products (and every list page) a miss. */
  products(ids: number[]): Promise<void>;
  /** Makes every cached catalog read a miss: one key, however large the catalog. */
  all(): Promise<void>;
};

// Per pipeline: keeps one invalidation of a whole import from building a huge reply.
const CHUNK = 1_000;
// Above this many ids, API processes drop their whole in-process cache instead of
// receiving a long message.
const MAX_IDS_PER_MESSAGE = 1_000;

/**
 * Bumps versions in Redis first, then tells API processes to evict their in-process
 * copies (pub/sub). Both happen in one pipeline, in order, so a process that receives
 * the message and reads again finds the new versions. Rejects when Redis did not take
 * every command, so a caller can retry.
 */
export function createCatalogInvalidator({ redis, prefix }: { redis: RedisClient; prefix: string }): CatalogInvalidator {
  const keys = catalogKeys(prefix);

  /** Gives each version key a new version, then publishes the message. */
  const run = async (versionKeys: string[], msg?: InvalidationMessage) => {
    if (redis instanceof Cluster) {
      // The version keys spread over the cluster's slots, and a cluster pipeline must
      // stay in one: set them one by one (concurrently), publish once all have answered.
      await Promise.all(versionKeys.map((key) => redis.set(key, newVersion(), "EX", VERSION_TTL_S)));
      if (msg) await redis.publish(keys.channel, JSON.stringify(msg));
      return;
    }
    const pipeline = redis.pipeline();
    for (const key of versionKeys) pipeline.set(key, newVersion(), "EX", VERSION_TTL_S);
    if (msg) pipeline.publish(keys.channel, JSON.stringify(msg));
    const replies = await pipeline.exec();
    const failed = replies?.find(([err]) => err)?.[0];
    if (!replies || failed) throw failed ?? new Error("cache Redis did not answer the invalidation");
  };

  return {
    async products(ids) {
      const unique = [...new Set(ids)].filter((id) => Number.isInteger(id) && id > 0);
      if (unique.length === 0) return;
      for (let i = 0; i < unique.length; i += CHUNK) {
        const chunk = unique.slice(i, i + CHUNK);
        const last = i + CHUNK >= unique.length;
        const versionKeys = chunk.map((id) => keys.productVersion(id));
        if (!last) {
          await run(versionKeys);
          continue;
        }
        await run([...versionKeys, keys.listVersion], unique.length > MAX_IDS_PER_MESSAGE ? { all: true } : { ids: unique });
      }
    },
    async all() {
      await run([keys.globalVersion], { all: true });
    },
  };
}
