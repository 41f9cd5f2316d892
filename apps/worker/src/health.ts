// The worker's /healthz answer: alive while it reaches its queue Redis, takes the jobs that wait for it, and is not stopping.
import type { LaneStall } from "./lane-stall.js";

export type HealthAnswer = { status: 200 | 503; headers: Record<string, string>; body: string };

type HealthInputs = {
  isStopping: () => boolean;
  /** When the queue Redis connections were last all known to answer (the watchdog's view). */
  lastContact: () => number | undefined;
  /** Unreachable longer than this, the worker is unhealthy. */
  unhealthyAfterMs: number;
  /** Lanes whose fetch loop is wedged (lane-stall.ts). */
  stalledLanes?: () => LaneStall[];
};

const problem = (type: string, title: string, detail: string, members: Record<string, unknown> = {}): HealthAnswer => ({
  status: 503,
  headers: { "Content-Type": "application/problem+json", "Cache-Control": "no-store", "Retry-After": "5" },
  body: JSON.stringify({ type, title, status: 503, detail, ...members }),
});

/**
 * A worker that cannot reach Redis fetches and finishes nothing, however alive its
 * process: it says so, so that an orchestrator restarts it if its own reconnects do not
 * bring it back. The threshold leaves its watchdog time to recover it first.
 */
export function createWorkerHealth({ isStopping, lastContact, unhealthyAfterMs, stalledLanes = () => [] }: HealthInputs): () => HealthAnswer {
  const startedAt = Date.now();
  return () => {
    if (isStopping()) {
      return problem("/problems/stopping", "Stopping", "The worker is shutting down: it finishes its active jobs and takes no new ones.", { checks: {} });
    }
    const since = lastContact() ?? startedAt;
    const silentMs = Date.now() - since;
    if (silentMs > unhealthyAfterMs) {
      const at = new Date(since).toISOString();
      return problem(
        "/problems/redis-unreachable",
        "Not healthy",
        `The queue Redis has not answered since ${at} (${Math.round(silentMs / 1000)} s): no job can be fetched or finished. The worker keeps reconnecting.`,
        { checks: { redis: "down" }, redisUnreachableSince: at },
      );
    }
    const stalled = stalledLanes();
    if (stalled.length) {
      const names = stalled
        .map((s) => (s.reason === "stuck" ? `${s.lane} (a job running since ${s.since})` : `${s.lane} (${s.waiting} waiting, none taken since ${s.since})`))
        .join(", ");
      return problem(
        "/problems/lane-stalled",
        "Not healthy",
        `A lane of this worker is wedged: ${names}. Only a restart brings it back (its active jobs return to other workers).`,
        { checks: { redis: "up", lanes: "stalled" }, stalledLanes: stalled },
      );
    }
    return {
      status: 200,
      headers: { "Content-Type": "application/json", "Cache-Control": "no-store" },
      body: JSON.stringify({ status: "ok", checks: { redis: "up" } }),
    };
  };
}
