// The stall monitor's verdicts on lanes read through fake probes: only a lane with room, quiet too long, while jobs wait.
import { afterEach, describe, expect, it } from "vitest";
import { createStallMonitor, type LaneProbe, type StallMonitor } from "../src/lane-stall.js";
import { createWorkerHealth } from "../src/health.js";
import { waitFor } from "../../../test/support/env.js";

const STALL_MS = 200;
const monitors: StallMonitor[] = [];
afterEach(() => monitors.splice(0).forEach((m) => m.stop()));

// Checks made so far, over every lane: a verdict is read after a few more of them.
let checks = 0;
function probe(over: Partial<LaneProbe> & { name: string }): LaneProbe {
  const idle = over.idle ?? (() => false);
  return { concurrency: 2, inFlight: () => 0, lastStartAt: () => Date.now() - 10 * STALL_MS, oldestStartAt: () => undefined, waiting: async () => 3, ...over, idle: () => (checks++, idle()) };
}

function watch(lanes: LaneProbe[]) {
  const events: string[] = [];
  const monitor = createStallMonitor({ lanes, stallAfterMs: STALL_MS, checkEveryMs: 20, onStall: (s) => events.push(`stall ${s.lane} ${s.waiting}`), onRecover: (l) => events.push(`recover ${l}`) });
  monitors.push(monitor);
  return { monitor, events };
}

/** Until every lane has been checked a few more times (however slow the machine is). */
const settle = (lanes: number) => {
  const until = checks + 3 * lanes;
  return waitFor(() => checks >= until, 10_000, "three more checks");
};

describe("lane stall monitor", () => {
  it("finds a lane with room that started nothing for too long while jobs wait, once", async () => {
    const { monitor, events } = watch([probe({ name: "products" })]);
    await settle(1);
    expect(monitor.stalled()).toMatchObject([{ lane: "products", reason: "idle", waiting: 3 }]);
    expect(events).toEqual(["stall products 3"]);
  });

  it("leaves alone a lane that is full, idle, recently started, has nothing waiting, or cannot be asked", async () => {
    const { monitor, events } = watch([
      probe({ name: "full", inFlight: () => 2 }),
      probe({ name: "paused", idle: () => true }),
      probe({ name: "recent", lastStartAt: () => Date.now() }),
      probe({ name: "empty", waiting: async () => 0 }),
      probe({ name: "unknown", waiting: async () => Promise.reject(new Error("no answer")) }),
    ]);
    await settle(5);
    expect(monitor.stalled()).toEqual([]);
    expect(events).toEqual([]);
  });

  it("finds a lane whose job runs past its bound, busy or not, and only where the lane has one", async () => {
    const longAgo = () => Date.now() - 10 * STALL_MS;
    const { monitor, events } = watch([
      probe({ name: "products", inFlight: () => 2, lastStartAt: () => Date.now(), oldestStartAt: longAgo, maxJobMs: STALL_MS }),
      probe({ name: "bulk", inFlight: () => 1, concurrency: 1, oldestStartAt: longAgo }),
    ]);
    await settle(2);
    expect(monitor.stalled()).toMatchObject([{ lane: "products", reason: "stuck" }]);
    expect(events).toEqual(["stall products 0"]);
  });

  it("clears the stall once the lane starts a job again", async () => {
    let last = Date.now() - 10 * STALL_MS;
    const { monitor, events } = watch([probe({ name: "bulk", lastStartAt: () => last })]);
    await waitFor(() => monitor.stalled().length === 1, 10_000, "the stall");
    last = Date.now();
    await waitFor(() => monitor.stalled().length === 0, 10_000, "the recovery");
    expect(monitor.stalled()).toEqual([]);
    expect(events).toEqual(["stall bulk 3", "recover bulk"]);
  });

  it("makes /healthz a 503 problem naming the lane", () => {
    const stall = { lane: "products", reason: "idle" as const, waiting: 5, since: new Date(0).toISOString() };
    const answer = createWorkerHealth({ isStopping: () => false, lastContact: () => Date.now(), unhealthyAfterMs: 10_000, stalledLanes: () => [stall] })();
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body)).toMatchObject({ type: "/problems/lane-stalled", checks: { redis: "up", lanes: "stalled" }, stalledLanes: [stall] });
  });
});
