import { withTimeout } from "@ingest/config";
import { Router } from "express";

export type HealthDeps = { checks: Record<string, () => Promise<unknown>>; isDraining: () => boolean; timeoutMs?: number };

const probe = (check: () => Promise<unknown>, timeoutMs: number): Promise<boolean> =>
  withTimeout(check(), timeoutMs).then(
    () => true,
    () => false,
  );

export function healthRoutes({ checks, isDraining, timeoutMs = 1_000 }: HealthDeps): Router {
  const router = Router();
  router.get("/healthz", (_req, res) => {
    res.set("Cache-Control", "no-store").json({ status: "ok" });
  });
  router.get("/readyz", async (_req, res) => {
    const names = Object.keys(checks);
    const results = await Promise.all(names.map((n) => probe(checks[n]!, timeoutMs)));
    const deps = Object.fromEntries(names.map((n, i) => [n, results[i] ? "up" : "down"]));
    const draining = isDraining();
    const ready = !draining && results.every(Boolean);
    if (!ready) res.set("Retry-After", "2");
    res
      .status(ready ? 200 : 503)
      .set("Cache-Control", "no-store")
      .json({ status: ready ? "ready" : "unavailable", draining, ...deps });
  });
  return router;
}
