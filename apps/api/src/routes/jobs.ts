// GET /jobs/:id: a write's status, optionally waiting until it has finished.
import { isClientJobId } from "@ingest/jobs";
import { Router } from "express";
import { setTimeout as sleep } from "node:timers/promises";
import { AppError } from "../errors.js";
import type { JobStatus, JobStatusReader } from "../job-status.js";
import { methodNotAllowed } from "../middleware/method-not-allowed.js";

const MAX_WAIT_MS = 10_000;
const isFinished = (s: JobStatus) => s.state === "completed" || s.state === "failed";

function parseWaitMs(raw: unknown): number {
  if (raw === undefined) return 0;
  if (typeof raw !== "string" || !/^\d{1,5}$/.test(raw) || Number(raw) > MAX_WAIT_MS) {
    throw new AppError("validation", `waitMs must be a whole number from 0 to ${MAX_WAIT_MS}.`, {
      errors: [{ path: "query/waitMs", message: `must be an integer from 0 to ${MAX_WAIT_MS}` }],
    });
  }
  return Number(raw);
}

export function jobRoutes(reader: JobStatusReader): Router {
  const router = Router();

  router
    .route("/jobs/:id")
    .get(async (req, res) => {
      const id = String(req.params.id);
      const waitMs = parseWaitMs(req.query.waitMs);
      const deadline = Date.now() + waitMs;
      const read = async () => {
        try {
          return await reader.get(id);
        } catch {
          throw new AppError("unavailable", "Job status is unavailable right now.", { retryAfterS: 2 });
        }
      };
      let status = isClientJobId(id) ? await read() : undefined;
      if (!status) throw new AppError("not_found", `No job with id ${JSON.stringify(id.slice(0, 80))}.`);
      // Long-poll: hold the answer until the job finishes, the wait ends or the client leaves.
      let pause = 10;
      while (!isFinished(status) && Date.now() < deadline && !req.socket.destroyed) {
        await sleep(Math.min(pause, Math.max(0, deadline - Date.now())));
        pause = Math.min(pause * 2, 200);
        status = (await read()) ?? status;
      }
      res.set("Cache-Control", "no-store").json(status);
    })
    .all(methodNotAllowed(["GET", "HEAD"]));

  return router;
}
