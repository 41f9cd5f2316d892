// The Redis watchdog against a real Redis behind a fault proxy: dead connections are
// dropped and come back, busy processes and live ones are left alone.
import { Queue, Worker } from "bullmq";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FaultProxy } from "../../../test/support/fault-proxy.js";
import { testEnv, waitFor } from "../../../test/support/env.js";
import { createProducerConnection, createWorkerConnection, type RedisClient } from "../src/connection.js";
import { createRedisWatchdog, type RedisWatchdog } from "../src/watchdog.js";

const { redisUrl, prefix } = testEnv("watchdog");
const TIMEOUT_MS = 1_000;
// Keeps Redis busy for 300 ms.
const SLOW_SCRIPT =
  "local s = redis.call('TIME') local t repeat t = redis.call('TIME') until (t[1] - s[1]) * 1000000 + (t[2] - s[2]) > 300000 return 1";

let proxy: FaultProxy;
const cleanups: (() => Promise<unknown> | unknown)[] = [];
beforeAll(async () => {
  proxy = await FaultProxy.start(FaultProxy.upstreamOf(redisUrl));
});
afterEach(async () => {
  proxy.pass();
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(() => proxy.close());

/** A watchdog whose drops are recorded; stopped after the test. */
function watchdog(): { dog: RedisWatchdog; drops: string[] } {
  const drops: string[] = [];
  const dog = createRedisWatchdog({ timeoutMs: TIMEOUT_MS, onDrop: (name, why) => drops.push(`${name}: ${why}`) });
  cleanups.push(() => dog.stop());
  return { dog, drops };
}

function connection(make: typeof createWorkerConnection = createWorkerConnection, url = proxy.urlFor(redisUrl)): RedisClient {
  const c = make(url, { retryStrategy: () => 100 });
  c.on("error", () => undefined);
  cleanups.push(() => c.disconnect());
  return c;
}

describe("Redis watchdog", () => {
  it("a live connection that falls into a black hole is dropped, reconnects once the path is back, and sends what waited", async () => {
    const { dog, drops } = watchdog();
    const redis = connection();
    dog.watch(redis, { name: "queue", critical: true });
    await waitFor(() => redis.status === "ready", 5_000, "ready");

    proxy.set({ kind: "blackhole" });
    const waiting = redis.incr(`${prefix}:watchdog:n`);
    await waitFor(() => drops.some((d) => d.startsWith("queue: no answer to PING")), 5_000, "drop after silent PINGs");
    expect(Date.now() - dog.lastContact()!).toBeGreaterThanOrEqual(TIMEOUT_MS);
    proxy.pass();
    // The command queued on the dead connection goes out on the new one.
    await expect(waiting).resolves.toBeGreaterThan(0);
    await waitFor(() => Date.now() - dog.lastContact()! < TIMEOUT_MS, 5_000, "fresh contact");
  });

  it("a reconnect accepted into a black hole is dropped when its handshake goes unanswered, and retried", async () => {
    const { dog, drops } = watchdog();
    const redis = connection();
    dog.watch(redis, { name: "queue", critical: true });
    await waitFor(() => redis.status === "ready", 5_000, "ready");

    proxy.resetAll();
    proxy.set({ kind: "blackhole" });
    await waitFor(() => drops.some((d) => d.startsWith("queue: handshake unanswered")), 5_000, "handshake drop");
    proxy.pass();
    await waitFor(() => redis.status === "ready", 10_000, "ready again");
    expect(await redis.ping()).toBe("PONG");
  });

  it("the producer's connection, whose commands time out first, is dropped all the same", async () => {
    const { dog, drops } = watchdog();
    const redis = connection(createProducerConnection);
    dog.watch(redis, { name: "producer", critical: true });
    await waitFor(() => redis.status === "ready", 5_000, "ready");
    proxy.set({ kind: "blackhole" });
    // Its own commandTimeout (3 s) is longer than this watchdog's: both must not hide each other.
    await waitFor(() => drops.some((d) => d.startsWith("producer: no answer to PING")), 10_000, "drop");
    proxy.pass();
    await waitFor(() => redis.status === "ready", 10_000, "ready again");
  });

  it("an event loop busy for longer than the timeout does not drop a connection that answered", async () => {
    const { dog, drops } = watchdog();
    // Straight to Redis: the proxy runs in this process and would be kept busy too.
    const redis = connection(createWorkerConnection, redisUrl);
    dog.watch(redis, { name: "queue", critical: true });
    await waitFor(() => redis.status === "ready", 5_000, "ready");
    // The watchdog's next PING reaches a Redis busy for 300 ms (a script), and this
    // process is busy for longer than the timeout meanwhile: the answer waits in the
    // socket when the watchdog's timer comes due again, and must be read first.
    const slow = connection(createWorkerConnection, redisUrl);
    const ping = redis.ping.bind(redis) as () => Promise<string>;
    let busied = false;
    (redis as { ping: () => Promise<string> }).ping = () => {
      if (busied) return ping();
      busied = true;
      void slow.eval(SLOW_SCRIPT, 0);
      return new Promise((r) => setTimeout(r, 20)).then(() => {
        const sent = ping();
        setImmediate(() => {
          const until = Date.now() + TIMEOUT_MS * 2.5;
          while (Date.now() < until);
        });
        return sent;
      });
    };
    await waitFor(() => busied, 5_000, "a PING sent");
    await new Promise((r) => setTimeout(r, TIMEOUT_MS * 4));
    expect(drops).toEqual([]);
    expect(redis.status).toBe("ready");
  });

  it("a BullMQ Worker's blocking connection is watched too, and the worker fetches again after reconnecting into a black hole", async () => {
    const { dog, drops } = watchdog();
    const redis = connection();
    dog.watch(redis, { name: "queue", critical: true, blockingCopies: true });
    const queue = new Queue("watchdog", { connection: createWorkerConnection(redisUrl), prefix });
    cleanups.push(async () => {
      await queue.obliterate({ force: true });
      await queue.close();
    });
    const done: string[] = [];
    const worker = new Worker("watchdog", async (job) => void done.push(job.name), { connection: redis, prefix, drainDelay: 1 });
    worker.on("error", () => undefined);
    cleanups.push(() => worker.close(true));
    await worker.waitUntilReady();
    await queue.add("before", {});
    await waitFor(() => done.includes("before"), 5_000, "job before the fault");

    proxy.resetAll();
    proxy.set({ kind: "blackhole" });
    await waitFor(() => drops.some((d) => d.startsWith("queue-blocking-")), 10_000, "the blocking copy's handshake dropped");
    await queue.add("during", {});
    proxy.pass();
    await waitFor(() => done.includes("during"), 20_000, "job added during the fault");
  });
});
