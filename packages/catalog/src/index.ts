// Catalog reads and their cache: SQL read queries, cache key scheme, invalidation.
// Shared by the API (reads), the worker (invalidation on commit) and the importer.
export { createCatalogInvalidator, type CatalogInvalidator } from "./invalidator.js";
export {
  catalogKeys,
  DEFAULT_CACHE_PREFIX,
  newVersion,
  resourceKey,
  VERSION_TTL_S,
  type InvalidationMessage,
  type Resource,
} from "./keys.js";
export { createCatalogQueries } from "./queries.js";
