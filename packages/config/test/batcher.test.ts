import { describe, expect, it } from "vitest";
import { createBatcher, settle, type Settled } from "../src/index.js";

/** A batcher whose run records each batch and doubles numbers, failing odd ones. */
function recording(maxSize: number, maxWaitMs: number) {
  const batches: number[][] = [];
  const batcher = createBatcher<number, number>({
    maxSize,
    maxWaitMs,
    run: async (items) => {
      batches.push(items);
      return items.map((n): Settled<number> => (n % 2 ? { ok: false, error: new Error(`odd ${n}`) } : { ok: true, value: n * 2 }));
    },
  });
  return { batcher, batches };
}

describe("createBatcher", () => {
  it("gathers the items of one event-loop turn into one call (wait 0)", async () => {
    const { batcher, batches } = recording(100, 0);
    const answers = await Promise.all([2, 4, 6].map((n) => batcher.submit(n)));
    expect(answers).toEqual([4, 8, 12]);
    expect(batches).toEqual([[2, 4, 6]]);
  });

  it("sends a full batch at once and the rest after the wait", async () => {
    const { batcher, batches } = recording(2, 5);
    const started = performance.now();
    const answers = await Promise.all([2, 4, 6].map((n) => batcher.submit(n)));
    expect(answers).toEqual([4, 8, 12]);
    expect(batches).toEqual([[2, 4], [6]]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(4);
  });

  it("fails only the item that failed; its neighbours get their answers", async () => {
    const { batcher } = recording(10, 0);
    const settled = await Promise.all([2, 3, 4].map((n) => settle(batcher.submit(n))));
    expect(settled[0]).toEqual({ ok: true, value: 4 });
    expect(settled[1]).toMatchObject({ ok: false, error: { message: "odd 3" } });
    expect(settled[2]).toEqual({ ok: true, value: 8 });
  });

  it("a run that throws fails every item of its batch, and the next batch still runs", async () => {
    let calls = 0;
    const batcher = createBatcher<number, number>({
      maxSize: 10,
      maxWaitMs: 0,
      run: async (items) => {
        if (calls++ === 0) throw new Error("down");
        return items.map((n) => ({ ok: true as const, value: n }));
      },
    });
    const first = await Promise.all([1, 2].map((n) => settle(batcher.submit(n))));
    expect(first.every((s) => !s.ok)).toBe(true);
    expect(await batcher.submit(3)).toBe(3);
  });
});
