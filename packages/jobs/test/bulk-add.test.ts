import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { testEnv } from "../../../test/support/harness.js";
import { createBulkAdder } from "../src/bulk-add.js";
import { createReplicaWait, NotReplicatedError } from "../src/replication.js";

const { redisUrl, prefix } = testEnv("bulk-add");
const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
const queue = new Queue("bulk-add", { connection, prefix });
afterAll(async () => {
  await queue.obliterate({ force: true });
  await queue.close();
  connection.disconnect();
});

/** Counts the queue's addBulk and add calls (the real methods still run). */
function counting(q: Queue) {
  const calls = { bulk: [] as number[], single: 0 };
  const addBulk = q.addBulk.bind(q);
  const add = q.add.bind(q);
  q.addBulk = (jobs) => (calls.bulk.push(jobs.length), addBulk(jobs));
  q.add = (...args) => (calls.single++, add(...args));
  return calls;
}
const calls = counting(queue);

describe("createBulkAdder", () => {
  it("the adds of one event-loop turn go to Redis as one addBulk", async () => {
    const add = createBulkAdder(queue, { timeoutMs: 2_000 });
    calls.bulk.length = 0;
    const ids = Array.from({ length: 25 }, (_, i) => `turn-${i}`);
    await Promise.all(ids.map((jobId) => add({ name: "n", data: { jobId }, jobId })));
    expect(calls.bulk).toEqual([25]);
    const stored = await Promise.all(ids.map((id) => queue.getJob(id)));
    expect(stored.map((j) => j?.data.jobId)).toEqual(ids);
  });

  it("a lone add is not held back waiting for company", async () => {
    const add = createBulkAdder(queue, { timeoutMs: 2_000 });
    const started = performance.now();
    await add({ name: "n", data: {}, jobId: "lone" });
    expect(performance.now() - started).toBeLessThan(250);
    expect(await queue.getJob("lone")).toBeDefined();
  });

  it("one bad job fails only its own request; the others of its bulk are stored", async () => {
    const add = createBulkAdder(queue, { timeoutMs: 2_000 });
    calls.single = 0;
    // BullMQ refuses a custom id that is a plain integer.
    const requests = ["good-1", "123", "good-2"].map((jobId) => add({ name: "n", data: {}, jobId }));
    const settled = await Promise.allSettled(requests);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(calls.single).toBe(3);
    expect(await queue.getJob("good-1")).toBeDefined();
    expect(await queue.getJob("good-2")).toBeDefined();
  });

  it("afterAdd runs once per batch, after the jobs landed; when it fails, every request of the batch fails with it", async () => {
    let checks = 0;
    const ok = createBulkAdder(queue, { timeoutMs: 2_000, afterAdd: async () => void checks++ });
    await Promise.all(["after-1", "after-2", "after-3"].map((jobId) => ok({ name: "n", data: {}, jobId })));
    expect(checks).toBe(1);

    // One replica more than this Redis has: WAIT gives up after its timeout, and no request of the batch succeeds.
    const connected = Number(/connected_slaves:(\d+)/.exec(await connection.info("replication"))?.[1] ?? 0);
    const wait = createReplicaWait(connection, `${prefix}:replication`, { replicas: connected + 1, timeoutMs: 100 })!;
    const waiting = createBulkAdder(queue, { timeoutMs: 2_000, afterAdd: wait });
    const settled = await Promise.allSettled(["wait-1", "wait-2"].map((jobId) => waiting({ name: "n", data: {}, jobId })));
    expect(settled.map((s) => s.status)).toEqual(["rejected", "rejected"]);
    expect(settled.map((s) => (s.status === "rejected" ? s.reason : undefined))).toEqual([expect.any(NotReplicatedError), expect.any(NotReplicatedError)]);
    // The jobs did reach the master: what failed is the promise that a replica has them.
    expect(await queue.getJob("wait-1")).toBeDefined();
    expect(createReplicaWait(connection, "k", { replicas: 0, timeoutMs: 100 })).toBeUndefined();
  });
});
