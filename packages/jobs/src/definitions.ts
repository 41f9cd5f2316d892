// Every queue and job defined once: names, payload schemas, results and job id prefixes.
import type { TraceCarrier } from "@ingest/telemetry";
import type { Static, TSchema } from "@sinclair/typebox";
import {
  ZProductCreateJob,
  ZProductDeleteJob,
  ZProductPatchJob,
  ZProductReplaceJob,
  ZRegistrationCreateJob,
} from "./payloads.js";

// Queues that carry accepted writes, the one for housekeeping the workers schedule, and
// the one for emails the workers decide to send after a write (see emails.ts).
export const WRITE_QUEUES = ["registrations", "products"] as const;
export const MAINTENANCE_QUEUE = "maintenance";
export const EMAILS_QUEUE = "emails";
// Bulk product edits (POST /products/bulk) have a lane of their own, drained by workers
// of their own, so a flood of them never delays the interactive writes (see bulk.ts).
export const BULK_QUEUE = "bulk";
export const QUEUE_NAMES = [...WRITE_QUEUES, MAINTENANCE_QUEUE, EMAILS_QUEUE, BULK_QUEUE] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];
export type WriteQueueName = (typeof WRITE_QUEUES)[number];

// A job id carries its queue, so GET /jobs/:id knows where to look without a scan.
export const JOB_ID_PREFIX: Record<QueueName, string> = {
  registrations: "reg",
  products: "prd",
  maintenance: "mnt",
  emails: "eml",
  bulk: "blk",
};

type Definition<S extends TSchema, R> = {
  queue: WriteQueueName;
  payload: S;
  /**
   * Edits that must apply in acceptance order name what they are ordered by (the product):
   * each carries a sequence number per key, and waits for the edit accepted before it.
   */
  orderKey?: (payload: Static<S>) => number;
  /** The catalog products whose cached reads the write changes once it is applied. */
  invalidates?: (payload: Static<S>, result: R) => number[];
  result?: R;
};

const define = <S extends TSchema, R>(d: Omit<Definition<S, R>, "result">) => d as Definition<S, R>;

export type RegistrationResult = { registrationId: number; outcome: "created" | "duplicate" };
type ProductResult = { productId: number };
type ProductDeleteResult = { productId: number; deleted: true };

const byProductId = (payload: { productId: number }) => payload.productId;
const theProduct = (payload: { productId: number }) => [payload.productId];

export const JOBS = {
  "registration.create": define<typeof ZRegistrationCreateJob, RegistrationResult>({
    queue: "registrations",
    payload: ZRegistrationCreateJob,
  }),
  "product.create": define<typeof ZProductCreateJob, ProductResult>({
    queue: "products",
    payload: ZProductCreateJob,
    // A create's id is known only once it is applied.
    invalidates: (_payload, result) => [result.productId],
  }),
  "product.replace": define<typeof ZProductReplaceJob, ProductResult>({
    queue: "products",
    payload: ZProductReplaceJob,
    orderKey: byProductId,
    invalidates: theProduct,
  }),
  "product.patch": define<typeof ZProductPatchJob, ProductResult>({
    queue: "products",
    payload: ZProductPatchJob,
    orderKey: byProductId,
    invalidates: theProduct,
  }),
  "product.delete": define<typeof ZProductDeleteJob, ProductDeleteResult>({
    queue: "products",
    payload: ZProductDeleteJob,
    orderKey: byProductId,
    invalidates: theProduct,
  }),
} as const;

export type JobName = keyof typeof JOBS;
export const JOB_NAMES = Object.keys(JOBS) as JobName[];
export type PayloadOf<N extends JobName> = Static<(typeof JOBS)[N]["payload"]>;
export type ResultOf<N extends JobName> = NonNullable<(typeof JOBS)[N]["result"]>;

/** What a job stores in Redis: the payload plus what the worker needs to apply it in order. */
export type JobData<N extends JobName = JobName> = {
  payload: PayloadOf<N>;
  /** Per-product sequence of ordered edits, and the one accepted just before (null: none known). */
  seq?: number;
  prevSeq?: number | null;
  /** The job that took prevSeq, so a worker can tell a slow predecessor from a lost one. */
  prevJobId?: string;
  requestId?: string;
  /** The W3C trace context of the request that made the write, when it was traced. */
  trace?: TraceCarrier;
  /** A write that failed for good in the carrier named here, now a job of its own. */
  spilledFrom?: string;
  /** A spilled write's acceptance (its carrier's timestamp), in ms. */
  acceptedAt?: number;
};

export function isJobName(name: string): name is JobName {
  return Object.hasOwn(JOBS, name);
}

/**
 * The write queue a client's job id belongs to. Only writes are answered by id: the
 * ids of follow-up jobs (eml-welcome-<registrationId>) are guessable, and their
 * reasons name internal hosts; operators see those in Bull Board.
 */
export function queueOfJobId(jobId: string): WriteQueueName | typeof BULK_QUEUE | undefined {
  const prefix = jobId.slice(0, jobId.indexOf("-"));
  if (prefix === JOB_ID_PREFIX.bulk) return BULK_QUEUE;
  return WRITE_QUEUES.find((q) => JOB_ID_PREFIX[q] === prefix);
}
