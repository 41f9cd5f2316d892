// @ingest/jobs: the job definitions, payloads, queues and the producer.
export * from "./definitions.js";
export * from "./emails.js";
export * from "./maintenance.js";
export * from "./payloads.js";
export { check } from "./validate.js";
export { hasHashTag } from "./queues.js";
export { NotReplicatedError } from "./replication.js";
export { closeQueues, createQueues, DEFAULT_JOB_OPTIONS, DEFAULT_PREFIX, type Queues } from "./queues.js";
export {
  hashKey,
  IdempotencyConflictError,
  QueueUnavailableError,
  Producer,
  type Accepted,
  type Idempotency,
} from "./producer.js";
export * from "./bulk.js";
export * from "./writes.js";
export { payloadVersion, RELEASE_PAYLOAD_VERSION, usePayloadVersion, versionOf } from "./version.js";
