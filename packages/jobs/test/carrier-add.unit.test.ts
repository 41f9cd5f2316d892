import type { Queue } from "bullmq";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { createCarrierAdder, type CarrierAdderOptions } from "../src/carrier-add.js";
import { carrierIdOf, WRITES_JOB, type Write } from "../src/writes.js";

type Added = { name: string; data: { writes: Write[] }; jobId: string };

/** A queue that records its adds; `fail` makes the next add reject. */
function recordingQueue() {
  const adds: Added[] = [];
  let fail: Error | undefined;
  const queue = {
    add: async (name: string, data: unknown, opts: { jobId: string }) => {
      if (fail) throw fail;
      adds.push({ name, data: data as Added["data"], jobId: opts.jobId });
      return {} as never;
    },
  } as unknown as Pick<Queue, "add">;
  return { queue, adds, failNext: (err: Error) => (fail = err) };
}

const options = (extra: Partial<CarrierAdderOptions> = {}): CarrierAdderOptions => ({
  idPrefix: "reg",
  timeoutMs: 1_000,
  maxWrites: 100,
  maxBytes: 1_000_000,
  lingerMs: 0,
  ...extra,
});
const write = (id: string, email: string): Write => ({ id, name: "registration.create", payload: { registration: { email, name: "N" } } });

describe("carrier jobs", () => {
  it("the writes of one event-loop turn go to Redis as one job, each under an id that names it", async () => {
    const { queue, adds } = recordingQueue();
    const adder = createCarrierAdder(queue, options());
    const slots = [1, 2, 3].map(() => adder.reserve());
    await Promise.all(slots.map((s, i) => s.fill(write(s.id, `w${i}@example.com`))));
    expect(adds).toHaveLength(1);
    expect(adds[0]!.name).toBe(WRITES_JOB);
    expect(adds[0]!.jobId).toMatch(/^reg-[0-9a-f-]{36}$/);
    expect(slots.map((s) => s.id)).toEqual([0, 1, 2].map((n) => `${adds[0]!.jobId}.${n}`));
    expect(slots.map((s) => carrierIdOf(s.id))).toEqual([adds[0]!.jobId, adds[0]!.jobId, adds[0]!.jobId]);
    expect(adds[0]!.data.writes.map((w) => w.id)).toEqual(slots.map((s) => s.id));
  });

  it("a lone write is stored at the end of its turn, waiting for nothing", async () => {
    const { queue, adds } = recordingQueue();
    const adder = createCarrierAdder(queue, options({ lingerMs: 0 }));
    const slot = adder.reserve();
    const started = performance.now();
    await slot.fill(write(slot.id, "lone@example.com"));
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(adds).toHaveLength(1);
    // The next turn opens another carrier.
    const next = adder.reserve();
    await next.fill(write(next.id, "next@example.com"));
    expect(adds).toHaveLength(2);
    expect(carrierIdOf(next.id)).not.toBe(carrierIdOf(slot.id));
  });

  it("a carrier waits for a place taken in its turn and filled later (the idempotency round trip), and leaves out cancelled ones", async () => {
    const { queue, adds } = recordingQueue();
    const adder = createCarrierAdder(queue, options());
    const now = adder.reserve();
    const later = adder.reserve();
    const cancelled = adder.reserve();
    const stored = now.fill(write(now.id, "now@example.com"));
    await sleep(20);
    // The turn ended long ago, but one place is still open: nothing is stored yet.
    expect(adds).toHaveLength(0);
    cancelled.cancel();
    expect(adds).toHaveLength(0);
    const alsoStored = later.fill(write(later.id, "later@example.com"));
    await Promise.all([stored, alsoStored]);
    expect(adds).toHaveLength(1);
    expect(adds[0]!.data.writes.map((w) => w.id)).toEqual([now.id, later.id]);
  });

  it("a carrier full of writes or bytes goes at once, and the next write opens another", async () => {
    const { queue, adds } = recordingQueue();
    const adder = createCarrierAdder(queue, options({ maxWrites: 2, maxBytes: 1_000 }));
    const [a, b, c] = [adder.reserve(), adder.reserve(), adder.reserve()];
    const big = adder.reserve(900);
    const bigger = adder.reserve(900);
    await Promise.all([a, b, c, big, bigger].map((s, i) => s.fill(write(s.id, `f${i}@example.com`))));
    expect(adds.map((x) => x.data.writes.length)).toEqual([2, 2, 1]);
    expect(carrierIdOf(c.id)).toBe(carrierIdOf(big.id));
    expect(carrierIdOf(bigger.id)).not.toBe(carrierIdOf(big.id));
  });

  it("with a linger, writes of later turns join an open carrier until it holds enough, or the linger ends", async () => {
    const { queue, adds } = recordingQueue();
    const adder = createCarrierAdder(queue, options({ lingerMs: 30, minWrites: 3 }));
    // Three in one turn: enough, it goes at the end of the turn without lingering.
    const turn = [adder.reserve(), adder.reserve(), adder.reserve()];
    const started = performance.now();
    await Promise.all(turn.map((s, i) => s.fill(write(s.id, `t${i}@example.com`))));
    expect(performance.now() - started).toBeLessThan(25);
    expect(adds.map((a) => a.data.writes.length)).toEqual([3]);
    adds.length = 0;
    const first = adder.reserve();
    const stored = first.fill(write(first.id, "first@example.com"));
    await sleep(5);
    const second = adder.reserve();
    await Promise.all([stored, second.fill(write(second.id, "second@example.com"))]);
    expect(adds).toHaveLength(1);
    expect(adds[0]!.data.writes).toHaveLength(2);
  });

  it("a failed add fails every write of the carrier, and so does a failed afterAdd", async () => {
    const { queue, failNext } = recordingQueue();
    const adder = createCarrierAdder(queue, options());
    failNext(new Error("redis away"));
    const [a, b] = [adder.reserve(), adder.reserve()];
    const results = await Promise.allSettled([a.fill(write(a.id, "a@example.com")), b.fill(write(b.id, "b@example.com"))]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);

    const { queue: ok, adds } = recordingQueue();
    const checked = createCarrierAdder(ok, options({ afterAdd: async () => Promise.reject(new Error("no replica")) }));
    const c = checked.reserve();
    await expect(c.fill(write(c.id, "c@example.com"))).rejects.toThrow("no replica");
    expect(adds).toHaveLength(1);
  });

  it("a place settles once", () => {
    const { queue } = recordingQueue();
    const slot = createCarrierAdder(queue, options()).reserve();
    slot.cancel();
    expect(() => slot.cancel()).toThrow(/settled twice/);
  });
});
