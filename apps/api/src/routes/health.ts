// GET /healthz and /readyz: liveness, and readiness from each dependency's probe.
import { withTimeout } from "@ingest/runtime";
import { Router } from "express";
import { AppError } from "../errors.js";
import { methodNotAllowed } from "../middleware/method-not-allowed.js";

export type HealthDeps = {
  checks: Record<string, () => Promise<unknown>>;
  isDraining: () => boolean;
  /** INSTANCE_ID, echoed by /healthz: tells which deployment (or `npm start`) answered. */
  instance?: string | undefined;
  timeoutMs?: number;
};

const probe = (check: () => Promise<unknown>, timeoutMs: number): Promise<boolean> =>
  withTimeout(check(), timeoutMs).then(
    () => true,
    () => false,
  );

/** What /readyz answers: each dependency's probe, and whether the process drains. */
export async function readiness({ checks, isDraining, timeoutMs = 1_000 }: HealthDeps) {
  const names = Object.keys(checks);
  const results = await Promise.all(names.map((n) => probe(checks[n]!, timeoutMs)));
  const draining = isDraining();
  return { ready: !draining && results.every(Boolean), draining, names, results };
}

export function healthRoutes(health: HealthDeps): Router {
  const { instance } = health;
  const alive = JSON.stringify(instance ? { status: "ok", instance } : { status: "ok" });
  const router = Router();
  const getOnly = methodNotAllowed(["GET", "HEAD"]);
  router
    .route("/healthz")
    .get((_req, res) => {
      res.set("Cache-Control", "no-store").type("application/json").send(alive);
    })
    .all(getOnly);
  router
    .route("/readyz")
    .get(async (_req, res) => {
      const { ready, draining, names, results } = await readiness(health);
      const deps = Object.fromEntries(names.map((n, i) => [n, results[i] ? "up" : "down"]));
      res.set("Cache-Control", "no-store");
      if (ready) {
        res.json({ status: "ready", draining, ...deps });
        return;
      }
      const down = names.filter((_n, i) => !results[i]);
      const detail = draining
        ? "The process is shutting down and takes no new work."
        : `Not ready: ${down.join(" and ")} ${down.length > 1 ? "do" : "does"} not answer.`;
      throw new AppError("not_ready", detail, { retryAfterS: 2, members: { draining, checks: deps } });
    })
    .all(getOnly);
  return router;
}
