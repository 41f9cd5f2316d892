// @ingest/db: the database client, the migrator, the schema and the pool metrics.
export { createDb, type Db, type DbHandle } from "./client.js";
export { migrateDatabase } from "./migrator.js";
export * from "./schema/index.js";
export { registerPoolMetrics } from "./pool-metrics.js";
