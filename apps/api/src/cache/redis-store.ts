// The shared Redis cache of catalog answers, with its refresh locks and a circuit breaker.
import { randomBytes } from "node:crypto";
import { catalogKeys, newVersion, VERSION_TTL_S, type Resource } from "@ingest/catalog";
import type { RedisClient } from "@ingest/redis";
import { Cluster } from "ioredis";
import CircuitBreaker from "opossum";
import { decodeEntry, encodeEntry, type Entry } from "./entry.js";

export type RedisStore = {
  /** The key an entry of this resource has under the current versions (read now). */
  entryKey(r: Resource): Promise<string>;
  get(key: string): Promise<Entry | undefined>;
  set(key: string, entry: Entry): Promise<void>;
  /** A short lock so one process fills a key while the others wait for its value. */
  lock(key: string): Promise<string | undefined>;
  unlock(key: string, token: string): Promise<void>;
  /** False while the breaker is open or half-open: Redis has been failing. */
  readonly healthy: boolean;
  close(): void;
};

type BreakerState = "open" | "halfOpen" | "close";

const UNLOCK = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) end return 0`;

// Every command goes through one breaker. The connection already fails at once while
// disconnected (no offline queue) and after 250 ms when Redis hangs; once half of the
// recent calls (at least 5) failed, the breaker answers for Redis for 3 s without
// asking it, so a hung cache costs a few requests 250 ms, not every request.
const BREAKER = {
  timeout: 500,
  errorThresholdPercentage: 50,
  volumeThreshold: 5,
  resetTimeout: 3_000,
  rollingCountTimeout: 10_000,
  name: "cache-redis",
};

export function createRedisStore(
  redis: RedisClient,
  opts: { prefix: string; keepMs: number; lockMs: number; onBreaker?: (state: BreakerState) => void },
): RedisStore {
  const keys = catalogKeys(opts.prefix);
  const breaker = new CircuitBreaker(async (op: () => Promise<unknown>) => {
    if (redis.status !== "ready") throw new Error(`cache Redis is ${redis.status}`);
    return op();
  }, BREAKER);
  breaker.on("open", () => opts.onBreaker?.("open"));
  breaker.on("halfOpen", () => opts.onBreaker?.("halfOpen"));
  breaker.on("close", () => opts.onBreaker?.("close"));
  const guarded = <T>(op: () => Promise<T>) => breaker.fire(op) as Promise<T>;

  const replies = async (p: ReturnType<RedisClient["pipeline"]>) => {
    const out = await p.exec();
    if (!out) throw new Error("cache Redis pipeline aborted");
    return out.map(([err, value]) => {
      if (err) throw err;
      return value as string | null;
    });
  };

  return {
    async entryKey(r) {
      const versionKey = keys.versionOf(r);
      // A cluster pipeline must stay in one slot; the two version keys rarely share one.
      let [global, own] = await guarded(() =>
        redis instanceof Cluster
          ? Promise.all([redis.get(keys.globalVersion), redis.get(versionKey)])
          : replies(redis.pipeline().get(keys.globalVersion).get(versionKey)),
      );
      if (global == null || own == null) {
        // First read since the version was written, expired or evicted: start a new one.
        // SET NX GET answers the value a concurrent reader or invalidator set first.
        const g = newVersion();
        const o = newVersion();
        const [prevG, prevO] = await guarded(() =>
          redis instanceof Cluster
            ? Promise.all([
                redis.set(keys.globalVersion, g, "EX", VERSION_TTL_S, "NX", "GET"),
                redis.set(versionKey, o, "EX", VERSION_TTL_S, "NX", "GET"),
              ])
            : replies(
                redis
                  .pipeline()
                  .set(keys.globalVersion, g, "EX", VERSION_TTL_S, "NX", "GET")
                  .set(versionKey, o, "EX", VERSION_TTL_S, "NX", "GET"),
              ),
        );
        global = prevG ?? g;
        own = prevO ?? o;
      }
      return keys.entry(r, `${global}.${own}`);
    },
    async get(key) {
      const raw = await guarded(() => redis.getBuffer(key));
      return raw ? decodeEntry(raw) : undefined;
    },
    async set(key, entry) {
      await guarded(() => redis.set(key, encodeEntry(entry), "PX", opts.keepMs));
    },
    async lock(key) {
      const token = randomBytes(8).toString("hex");
      const ok = await guarded(() => redis.set(keys.lock(key), token, "PX", opts.lockMs, "NX"));
      return ok === "OK" ? token : undefined;
    },
    async unlock(key, token) {
      await guarded(() => redis.eval(UNLOCK, 1, keys.lock(key), token));
    },
    get healthy() {
      return breaker.closed;
    },
    close: () => breaker.shutdown(),
  };
}
