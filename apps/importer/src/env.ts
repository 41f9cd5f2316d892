// The importer's configuration: every variable `import` reads, parsed once at start.
import { DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, hostPorts, int, oneOf, parseEnv, str, url } from "@ingest/config";
import { DEFAULT_CACHE_PREFIX } from "@ingest/catalog";

const REDIS = ["redis:", "rediss:"];

export function loadImportEnv(source: Record<string, string | undefined> = process.env) {
  return parseEnv(
    {
      DATABASE_URL: url(["postgres:", "postgresql:"], DEFAULT_DATABASE_URL),
      REDIS_URL: url(REDIS, DEFAULT_REDIS_URL),
      // The cache may live in its own Redis; without one it is the queue Redis.
      CACHE_REDIS_URL: url(REDIS, source.REDIS_URL || DEFAULT_REDIS_URL),
      // As the apps: a cache on a Redis Cluster (follows REDIS_CLUSTER_NODES unless CACHE_REDIS_URL is set).
      CACHE_REDIS_CLUSTER_NODES: hostPorts(source.CACHE_REDIS_URL ? undefined : source.REDIS_CLUSTER_NODES),
      CACHE_PREFIX: str(DEFAULT_CACHE_PREFIX),
      // Examples shown per skip reason and file.
      IMPORT_EXAMPLES: int(5, { min: 0, max: 1_000 }),
      // "auto": a superuser session checks parents set-based under row locks and skips the
      // row-by-row foreign-key triggers (about twice as fast); "always" keeps the triggers.
      IMPORT_FK_TRIGGERS: oneOf(["auto", "always"], "auto"),
    },
    source,
  );
}
