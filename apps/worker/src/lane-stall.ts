// Finds a lane whose Worker stopped taking jobs while jobs wait for it and it has room: a fetch loop wedged where no connection check can see it.

/** What the monitor reads of one lane. */
export type LaneProbe = {
  name: string;
  concurrency: number;
  /** Jobs of this lane being processed in this process now. */
  inFlight(): number;
  /** When this process last started a job of the lane (or began watching it). */
  lastStartAt(): number;
  /** Paused, closing or not running: not expected to take jobs. */
  idle(): boolean;
  /** Jobs waiting to be taken (not delayed, not active); rejects or times out when Redis does not say. */
  waiting(): Promise<number>;
};

export type LaneStall = { lane: string; waiting: number; since: string };

export type StallMonitor = {
  /** The lanes found stalled at the last check. */
  stalled(): LaneStall[];
  stop(): void;
};

type Options = {
  lanes: LaneProbe[];
  /** A lane with room that started nothing for this long while jobs wait is stalled. */
  stallAfterMs: number;
  checkEveryMs?: number;
  onStall: (stall: LaneStall) => void;
  onRecover: (lane: string) => void;
};

/**
 * Every check, a lane with free slots that has not started a job for stallAfterMs is
 * asked for its waiting jobs; any waiting means its fetch loop is wedged (a healthy one
 * takes a waiting job within milliseconds, and comes back within seconds from a Redis
 * outage). The process cannot unwedge it: /healthz says so, and the orchestrator
 * restarts the worker (its active jobs come back to another worker as stalled jobs).
 */
export function createStallMonitor({ lanes, stallAfterMs, checkEveryMs = Math.max(1_000, Math.floor(stallAfterMs / 4)), onStall, onRecover }: Options): StallMonitor {
  const stalls = new Map<string, LaneStall>();
  let checking = false;

  const check = async (lane: LaneProbe) => {
    const quietMs = Date.now() - lane.lastStartAt();
    if (lane.idle() || lane.inFlight() >= lane.concurrency || quietMs < stallAfterMs) {
      if (stalls.delete(lane.name)) onRecover(lane.name);
      return;
    }
    let waiting: number;
    try {
      waiting = await lane.waiting();
    } catch {
      // Redis does not answer: the connection watchdog and its health check cover that.
      return;
    }
    if (waiting === 0) {
      if (stalls.delete(lane.name)) onRecover(lane.name);
      return;
    }
    if (stalls.has(lane.name)) return;
    const stall = { lane: lane.name, waiting, since: new Date(lane.lastStartAt()).toISOString() };
    stalls.set(lane.name, stall);
    onStall(stall);
  };

  const timer = setInterval(() => {
    if (checking) return;
    checking = true;
    void Promise.allSettled(lanes.map(check)).finally(() => (checking = false));
  }, checkEveryMs);
  timer.unref();

  return {
    stalled: () => [...stalls.values()],
    stop: () => clearInterval(timer),
  };
}
