// Writes as the worker sees them, for tests that apply them directly.
import { randomUUID } from "node:crypto";
import type { WriteEnvelope } from "../../src/write.js";

type Extra = Partial<Pick<WriteEnvelope, "seq" | "prevSeq" | "prevJobId" | "requestId">>;

/** A first delivery of a write as the worker would see it, with a fresh id of a carrier's shape. */
export const envelope = (name: WriteEnvelope["name"], payload: unknown, extra: Extra = {}): WriteEnvelope => ({
  id: `${name.startsWith("registration") ? "reg" : "prd"}-${randomUUID()}.0`,
  name,
  payload: payload as never,
  ...extra,
  queue: name.startsWith("registration") ? "registrations" : "products",
  timestamp: Date.now(),
  attemptsMade: 0,
  redelivered: false,
});
