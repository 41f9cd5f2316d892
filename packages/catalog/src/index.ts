// Catalog reads and their cache: SQL read queries, cache key scheme, invalidation.
// Shared by the API (reads), the worker (invalidation on commit) and the importer.
export {};
