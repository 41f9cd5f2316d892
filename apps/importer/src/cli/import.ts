// The `npm run import` command: loads the catalog CSV exports of a folder and prints the summary.
import { resolve } from "node:path";
import { parseCli, usageFailure } from "./args.js";
import { importCatalog } from "../import/import-catalog.js";
import { loadImportEnv } from "../env.js";
import { barProgress, lineProgress } from "../import/progress.js";
import { formatSummary } from "../import/summary.js";

// `npm run import -- DIR`: loads the catalog CSV exports in DIR. Exit 0 when every
// present file loaded (skipped rows are reported, not fatal), 1 when a file failed or
// nothing could be imported, 2 on bad usage.
const USAGE = `usage: import DIR [--progress bar|lines|none]
  DIR holds any of product.csv, features.csv, styles.csv, photos.csv, skus.csv, related.csv
  env: DATABASE_URL, CACHE_REDIS_URL (default REDIS_URL), CACHE_REDIS_CLUSTER_NODES (default REDIS_CLUSTER_NODES), CACHE_PREFIX, IMPORT_EXAMPLES, IMPORT_FK_TRIGGERS`;

function fail(message: string, code = 2): never {
  if (code === 2) usageFailure(USAGE, message);
  console.error(message);
  process.exit(code);
}

const args = parseCli(USAGE, {
  allowPositionals: true,
  options: {
    progress: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
const [dir, ...extra] = args.positionals;
if (!dir || extra.length) fail("give exactly one folder");
const mode = args.values.progress ?? (process.stderr.isTTY ? "bar" : "lines");
if (!["bar", "lines", "none"].includes(mode)) fail(`--progress must be bar, lines or none, got ${mode}`);

const env = (() => {
  try {
    return loadImportEnv();
  } catch (err) {
    return fail((err as Error).message, 1);
  }
})();

const progress = mode === "none" ? undefined : mode === "bar" ? barProgress() : lineProgress();
process.once("SIGINT", () => {
  progress?.stop();
  // Files not yet committed roll back when their connections close.
  console.error("\nimport interrupted: files already reported as loaded are committed, the others are not");
  process.exit(130);
});

try {
  const summary = await importCatalog({
    databaseUrl: env.DATABASE_URL,
    dir: resolve(dir),
    examples: env.IMPORT_EXAMPLES,
    ...(env.IMPORT_FK_TRIGGERS === "always" ? { trustParents: false } : {}),
    ...(progress ? { progress } : {}),
    cache: { url: { url: env.CACHE_REDIS_URL, clusterNodes: env.CACHE_REDIS_CLUSTER_NODES }, prefix: env.CACHE_PREFIX },
  });
  console.log(formatSummary(summary));
  if (summary.cache.status === "failed") console.error(`warning: cache not invalidated: ${summary.cache.detail}`);
  const found = summary.files.some((f) => f.status !== "absent");
  if (!found) console.error(`no catalog files in ${summary.dir}`);
  process.exitCode = summary.failedFiles || !found ? 1 : 0;
} catch (err) {
  fail(`import failed: ${(err as Error).message}`, 1);
}
