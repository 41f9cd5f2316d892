import type { ChainableCommander, Redis } from "ioredis";
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
export function createCatalogInvalidator({ redis, prefix }: { redis: Redis; prefix: string }): CatalogInvalidator {
  const keys = catalogKeys(prefix);

  const run = async (fill: (p: ChainableCommander) => void) => {
    const pipeline = redis.pipeline();
    fill(pipeline);
    const replies = await pipeline.exec();
    const failed = replies?.find(([err]) => err)?.[0];
    if (!replies || failed) throw failed ?? new Error("cache Redis did not answer the invalidation");
  };
  const publish = (p: ChainableCommander, msg: InvalidationMessage) => p.publish(keys.channel, JSON.stringify(msg));

  return {
    async products(ids) {
      const unique = [...new Set(ids)].filter((id) => Number.isInteger(id) && id > 0);
      if (unique.length === 0) return;
      for (let i = 0; i < unique.length; i += CHUNK) {
        const chunk = unique.slice(i, i + CHUNK);
        const last = i + CHUNK >= unique.length;
        await run((p) => {
          for (const id of chunk) p.set(keys.productVersion(id), newVersion(), "EX", VERSION_TTL_S);
          if (!last) return;
          p.set(keys.listVersion, newVersion(), "EX", VERSION_TTL_S);
          publish(p, unique.length > MAX_IDS_PER_MESSAGE ? { all: true } : { ids: unique });
        });
      }
    },
    async all() {
      await run((p) => {
        p.set(keys.globalVersion, newVersion(), "EX", VERSION_TTL_S);
        publish(p, { all: true });
      });
    },
  };
}
