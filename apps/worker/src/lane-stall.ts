// Finds a lane whose Worker stopped taking jobs while jobs wait for it and it has room, or whose job never returns: a wedge no connection check can see.

/** What the monitor reads of one lane. */
export type LaneProbe = {
  name: string;
  concurrency: number;
  /** Jobs of this lane being processed in this process now. */
  inFlight(): number;
  /** When this process last started a job of the lane (or began watching it). */
  lastStartAt(): number;
  /** When the longest-running job of the lane in this process started, if any runs. */
  oldestStartAt(): number | undefined;
  /** A job of this lane that runs longer is stuck (undefined: its jobs may run for long). */
  maxJobMs?: number;
  /** Paused, closing or not running: not expected to take jobs. */
  idle(): boolean;
  /** Jobs waiting to be taken (not delayed, not active); rejects or times out when Redis does not say. */
  waiting(): Promise<number>;
};

/** idle: jobs wait and none is taken; stuck: a job has run past the lane's bound. */
export type LaneStall = { lane: string; reason: "idle" | "stuck"; waiting: number; since: string };

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
 * outage). A lane whose jobs are bounded (every wait in them has a timeout) and that has
 * one running past the bound is stuck on a promise that will never settle. The process
 * cannot unwedge either: /healthz says so, and the orchestrator restarts the worker (its
 * active jobs come back to another worker as stalled jobs).
 */
export function createStallMonitor({ lanes, stallAfterMs, checkEveryMs = Math.max(1_000, Math.floor(stallAfterMs / 4)), onStall, onRecover }: Options): StallMonitor {
  const stalls = new Map<string, LaneStall>();
  let checking = false;

  const found = (lane: LaneProbe, stall: LaneStall) => {
    if (stalls.get(lane.name)?.reason === stall.reason) return;
    stalls.set(lane.name, stall);
    onStall(stall);
  };

  const check = async (lane: LaneProbe) => {
    const oldest = lane.oldestStartAt();
    if (!lane.idle() && lane.maxJobMs !== undefined && oldest !== undefined && Date.now() - oldest > lane.maxJobMs) {
      return found(lane, { lane: lane.name, reason: "stuck", waiting: 0, since: new Date(oldest).toISOString() });
    }
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
    found(lane, { lane: lane.name, reason: "idle", waiting, since: new Date(lane.lastStartAt()).toISOString() });
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
