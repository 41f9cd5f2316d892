import { randomUUID } from "node:crypto";
import type { JobEnvelope } from "../../src/apply.js";

/** A first delivery of a job as the worker would see it, with a fresh id. */
export const envelope = (name: JobEnvelope["name"], payload: unknown, extra: Partial<JobEnvelope["data"]> = {}): JobEnvelope => ({
  id: `${name.startsWith("registration") ? "reg" : "prd"}-${randomUUID()}`,
  name,
  queue: name.startsWith("registration") ? "registrations" : "products",
  data: { payload: payload as never, ...extra },
  timestamp: Date.now(),
  attemptsMade: 0,
  redelivered: false,
});
