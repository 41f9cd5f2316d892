// A keyed write whose add timed out may still land: its Idempotency-Key must stay taken,
// or the client's retry with that key stores the write a second time.
import { randomUUID } from "node:crypto";
import type { Queue } from "bullmq";
import { createProducerConnection } from "@ingest/redis";
import { ReplyError } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { certainlyNotStored, IdempotencyConflictError, Producer, QueueUnavailableError } from "../src/producer.js";
import { createQueues, closeQueues } from "../src/queues.js";
import { carrierIdOf } from "../src/writes.js";

const redisUrl = inject("redisUrl");
const prefix = `{ingest-test-${inject("runId")}-idem}`;
const redis = createProducerConnection({ url: redisUrl }, { connectionName: "ingest-test" });
const queues = createQueues(redis, prefix, () => {});

afterAll(async () => {
  await closeQueues(queues);
  redis.disconnect();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("a keyed write whose add did not answer in time", () => {
  it("keeps its key: the retry waits (409) and then answers the first write, which is stored once", async () => {
    await new Promise<void>((resolve) => (redis.status === "ready" ? resolve() : redis.once("ready", () => resolve())));
    const landed: string[] = [];
    let slow = true;
    // The registrations queue's add lands 5.5 s late: after the producer gave up on it (5 s).
    const lateQueues = {
      ...queues,
      registrations: {
        add: async (name: string, data: unknown, opts: { jobId: string }) => {
          if (slow) await sleep(5_500);
          const job = await queues.registrations.add(name, data, opts);
          landed.push(opts.jobId);
          return job;
        },
      } as unknown as Queue,
    };
    const exists = async (jobId: string) => (await queues.registrations.getJob(carrierIdOf(jobId) ?? jobId)) !== undefined;
    const producer = new Producer({ redis, queues: lateQueues, prefix, jobExists: exists, carriers: { lingerMs: 0, minWrites: 1 } });
    const key = randomUUID();
    const opts = { idempotency: { scope: "test", key, fingerprint: "f" } };
    const payload = { registration: { email: `late-${key}@example.com`, name: "Late" } };

    await expect(producer.enqueue("registration.create", payload, opts)).rejects.toBeInstanceOf(QueueUnavailableError);
    slow = false;
    // Still in flight: the same key is "in progress", not free.
    await expect(producer.enqueue("registration.create", payload, opts)).rejects.toBeInstanceOf(IdempotencyConflictError);
    await waitForLanding(landed);
    // Once it landed, the retry answers the first write instead of storing another.
    const retried = await producer.enqueue("registration.create", payload, opts);
    expect(retried.replayed).toBe(true);
    expect(landed).toHaveLength(1);
    expect(carrierIdOf(retried.jobId)).toBe(landed[0]);
  }, 30_000);

  it("only an add Redis refused, or one never sent, counts as certainly not stored", () => {
    expect(certainlyNotStored(new ReplyError("OOM command not allowed when used memory > 'maxmemory'."))).toBe(true);
    expect(certainlyNotStored(new Error("Stream isn't writeable and enableOfflineQueue options is false"))).toBe(true);
    expect(certainlyNotStored(new Error("queue add timed out after 5000 ms"))).toBe(false);
    expect(certainlyNotStored(new Error("Connection is closed."))).toBe(false);
  });
});

async function waitForLanding(landed: string[]): Promise<void> {
  for (let i = 0; i < 100 && landed.length === 0; i++) await sleep(100);
  expect(landed).toHaveLength(1);
}
