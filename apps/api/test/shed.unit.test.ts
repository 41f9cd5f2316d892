import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { createShedder, type Shedder } from "../src/middleware/shed.js";

const LAG_MS = 100;
const block = (ms: number) => {
  for (const end = performance.now() + ms; performance.now() < end; );
};
/** Blocks the loop `times` in a row, giving the shedder's timer one turn between blocks. */
async function stallRepeatedly(times: number, ms: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    block(ms);
    await sleep(0);
  }
}

describe("the load shedder's event-loop measure", () => {
  let shedder: Shedder | undefined;
  afterEach(() => shedder?.stop());

  it("does not shed for one stall: a cold code path or a GC is not overload", async () => {
    shedder = createShedder({ lagMs: LAG_MS, onShed: () => {}, warmupMs: 0 });
    await sleep(100);
    block(4 * LAG_MS);
    await sleep(30); // the late tick has fired
    expect(shedder.delayMs()).toBeGreaterThan(LAG_MS); // measured for the metrics…
    expect(shedder.sustainedDelayMs()).toBeLessThan(LAG_MS); // …but not shed for
  });

  it("sheds when the loop is late tick after tick", async () => {
    shedder = createShedder({ lagMs: LAG_MS, onShed: () => {}, warmupMs: 0 });
    await sleep(100);
    await stallRepeatedly(5, 2 * LAG_MS);
    expect(shedder.sustainedDelayMs()).toBeGreaterThan(LAG_MS);
  });

  it("ignores the stalls of start-up, however many", async () => {
    shedder = createShedder({ lagMs: LAG_MS, onShed: () => {}, warmupMs: 2_000 });
    await stallRepeatedly(5, 2 * LAG_MS);
    expect(shedder.delayMs()).toBeGreaterThan(LAG_MS);
    expect(shedder.sustainedDelayMs()).toBe(0);
  });
});
