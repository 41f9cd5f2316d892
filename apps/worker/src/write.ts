// A write as the worker applies it: the accepted write and how it was delivered.
import type { QueueName, Write } from "@ingest/jobs";

export type WriteEnvelope = Write & {
  /** The queue its job came from. */
  queue: QueueName;
  /** When it was accepted (its job's timestamp), in ms. */
  timestamp: number;
  /** Attempts its job spent before this one. */
  attemptsMade: number;
  /** Tried before (a retry, a run whose worker died or lost its lock, a spilled write): look in the ledger first. */
  redelivered: boolean;
};

export type Outcome = { status: "completed"; result: unknown } | { status: "failed"; code: string; message: string };
