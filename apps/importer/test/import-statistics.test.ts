// The import leaves every table it loaded analyzed, so the first reads are planned on real statistics.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../../../test/support/harness.js";
import { importCatalog } from "../src/import/import-catalog.js";
import { formatSummary } from "../src/import/summary.js";
import { generateCatalog } from "../src/seed/generate-catalog.js";
import { createScratchDatabase, createTempDir, type Scratch, type TempDir } from "../../../test/support/scratch.js";

const TABLES = ["products", "features", "styles", "photos", "skus", "related"] as const;

let db: Scratch;
let tmp: TempDir;
beforeAll(async () => {
  [db, tmp] = await Promise.all([createScratchDatabase("imp_stats"), createTempDir("import-statistics")]);
  // Autovacuum must not be the one that analyzes them, wherever this runs.
  for (const t of TABLES) await db.query(`ALTER TABLE ${t} SET (autovacuum_enabled = false)`);
});
afterAll(async () => {
  await Promise.all([db?.drop(), tmp?.remove()]);
});

type Stats = { relname: string; reltuples: number; rows: number };
const statistics = async (): Promise<Stats[]> => {
  const out: Stats[] = [];
  for (const t of TABLES) {
    const [row] = await db.query<Stats>(
      `SELECT relname, reltuples::float8 AS reltuples, (SELECT count(*)::int FROM ${t}) AS rows FROM pg_class WHERE oid = '${t}'::regclass`,
    );
    out.push(row!);
  }
  return out;
};
const lastAnalyzed = async () =>
  db.query<{ relname: string }>(
    `SELECT relname FROM pg_stat_user_tables WHERE relname = ANY($1) AND last_analyze IS NOT NULL ORDER BY relname`,
    [TABLES],
  );

describe("statistics after an import", () => {
  it("every table the import loaded is analyzed: the planner knows its rows and their values, and the summary says so", async () => {
    // Before: never analyzed, so the planner has no row count (-1) to go on.
    expect((await statistics()).map((s) => s.reltuples)).toEqual(TABLES.map(() => -1));

    const dir = await tmp.write({});
    await generateCatalog({ products: 400, out: dir });
    const summary = await importCatalog({ databaseUrl: db.url, dir, cache: false });
    expect(summary.failedFiles).toBe(0);
    expect(summary.files.map((f) => [f.table, f.analyzed])).toEqual(TABLES.map((t) => [t, true]));

    // ANALYZE reads every row of tables this small: the counts are exact.
    for (const s of await statistics()) {
      expect(s.rows, s.relname).toBeGreaterThan(0);
      expect(s.reltuples, s.relname).toBe(s.rows);
    }
    expect(await db.query("SELECT attname FROM pg_stats WHERE tablename = 'styles' AND attname = 'product_id'")).toEqual([
      { attname: "product_id" },
    ]);
    // The activity statistics reach the view once the import's sessions have ended.
    await waitFor(async () => (await lastAnalyzed()).length === TABLES.length, 10_000, "last_analyze of every table");
    expect(formatSummary(summary)).toMatch(
      /statistics: ANALYZE run on products, features, styles, photos, skus, related after loading \(\d/,
    );
  });

  it("a file that failed is not analyzed and its table is not named as analyzed", async () => {
    const dir = await tmp.write({
      "product.csv": "id,name,slogan,description,category,default_price\n1,A,s,d,c,1\n",
      "features.csv": "id,product_id,feature\n1,1,Fabric\n",
    });
    const summary = await importCatalog({ databaseUrl: db.url, dir, cache: false });
    expect(summary.files.filter((f) => f.status !== "absent").map((f) => [f.table, f.status, f.analyzed])).toEqual([
      ["products", "loaded", true],
      ["features", "failed", false],
    ]);
    expect(formatSummary(summary)).toMatch(/statistics: ANALYZE run on products after loading/);
  });
});
