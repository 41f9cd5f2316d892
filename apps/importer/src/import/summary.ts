// The report printed at the end of an import.
import { formatCount, formatDuration } from "./format.js";
import type { ImportSummary } from "./import-catalog.js";

const pad = (s: string, n: number) => s.padStart(n);

/** The report printed at the end of `npm run import`. */
export function formatSummary(s: ImportSummary): string {
  const out: string[] = [];
  out.push(`import of ${s.dir}`);
  out.push(
    `  ${"file".padEnd(13)}${pad("rows", 12)}${pad("loaded", 12)}${pad("new", 12)}${pad("updated", 10)}${pad("unchanged", 12)}` +
      `${pad("skipped", 10)}${pad("reading", 10)}${pad("merging", 10)}`,
  );
  for (const f of s.files) {
    if (f.status === "absent") {
      out.push(`  ${f.file.padEnd(13)}  not found, skipped`);
      continue;
    }
    const cells = [f.rows, f.loaded, f.inserted, f.updated, f.unchanged, f.skipped].map(formatCount);
    const widths = [12, 12, 12, 10, 12, 10];
    out.push(`  ${f.file.padEnd(13)}${cells.map((c, i) => pad(c, widths[i] ?? 10)).join("")}${pad(formatDuration(f.readMs), 10)}${pad(formatDuration(f.mergeMs), 10)}`);
    if (f.status === "failed") out.push(`    FAILED, nothing of this file was loaded: ${f.error}`);
  }

  const skipped = s.files.filter((f) => f.rejects.length);
  if (skipped.length) {
    out.push("skipped rows:");
    for (const f of skipped) {
      for (const g of f.rejects) {
        out.push(`  ${f.file}: ${formatCount(g.count)} × ${g.reason}`);
        for (const e of g.examples) out.push(`    ${f.file}:${e.line}: ${g.reason}${e.detail ? ` (${e.detail})` : ""}`);
      }
    }
  }

  out.push(...statisticsLines(s));
  out.push(
    s.trustParents
      ? "parents: checked set-based under FOR KEY SHARE locks (foreign-key triggers skipped: superuser session)"
      : "parents: checked set-based, and row by row by the foreign keys",
  );
  const cache =
    s.cache.status === "invalidated"
      ? `cache: invalidated (${s.cache.detail})`
      : s.cache.status === "failed"
        ? `cache: WARNING, not invalidated: ${s.cache.detail}; cached reads may be stale until their TTL`
        : "cache: not configured";
  out.push(cache);
  const failed = s.failedFiles ? `, ${s.failedFiles} file(s) FAILED` : "";
  out.push(
    `total: ${formatCount(s.rows)} rows read, ${formatCount(s.loaded)} loaded, ${formatCount(s.skipped)} skipped${failed} ` +
      `in ${formatDuration(s.ms)} (${formatCount(s.rowsPerSecond)} rows/s)`,
  );
  return out.join("\n");
}

/** Which tables were analyzed after loading; a table left without statistics is a warning. */
function statisticsLines(s: ImportSummary): string[] {
  const loaded = s.files.filter((f) => f.status === "loaded");
  if (loaded.length === 0) return [];
  const analyzed = loaded.filter((f) => f.analyzed);
  const lines: string[] = [];
  if (analyzed.length) {
    const ms = analyzed.reduce((sum, f) => sum + f.analyzeMs, 0);
    lines.push(`statistics: ANALYZE run on ${analyzed.map((f) => f.table).join(", ")} after loading (${formatDuration(ms)})`);
  }
  for (const f of loaded.filter((x) => !x.analyzed)) {
    lines.push(`statistics: WARNING, ${f.table} not analyzed: ${f.analyzeError}; run ANALYZE ${f.table} before serving reads`);
  }
  return lines;
}
