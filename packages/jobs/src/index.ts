// @ingest/jobs: the job definitions, payloads, queues, connections and the producer.
export * from "./definitions.js";
export * from "./emails.js";
export * from "./maintenance.js";
export * from "./payloads.js";
export { check, normalisePrice, type Checked, type FieldError } from "./validate.js";
export { hasHashTag } from "./queues.js";
export {
  clusterNodesOf,
  createProducerConnection,
  createWorkerConnection,
  waitForReady,
  warnUnlessNoEviction,
  type RedisClient,
  type RedisTarget,
} from "./connection.js";
export { createCarrierAdder, type CarrierAdder, type CarrierAdderOptions, type CarrierSlot } from "./carrier-add.js";
export { createRedisWatchdog, type RedisWatchdog, type WatchOptions } from "./watchdog.js";
export { createReplicaWait, NotReplicatedError, type ReplicaWait } from "./replication.js";
export { closeQueues, createQueues, DEFAULT_JOB_OPTIONS, DEFAULT_PREFIX, type Queues } from "./queues.js";
export {
  hashKey,
  IdempotencyConflictError,
  InvalidPayloadError,
  QueueUnavailableError,
  Producer,
  CARRIER_DEFAULTS,
  type CarrierLimits,
  type Accepted,
  type EnqueueOptions,
  type Idempotency,
} from "./producer.js";
export * from "./bulk.js";
export * from "./writes.js";
export { payloadVersion, RELEASE_PAYLOAD_VERSION, usePayloadVersion, versionOf } from "./version.js";
