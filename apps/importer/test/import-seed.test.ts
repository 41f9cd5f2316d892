import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { importCatalog } from "../src/import/import-catalog.js";
import { generateCatalog, type SeedSummary } from "../src/seed/generate-catalog.js";
import { createScratchDatabase, createTempDir, ROOT, type Scratch, type TempDir } from "../../../test/support/scratch.js";

const run = promisify(execFile);

let db: Scratch;
let tmp: TempDir;
beforeAll(async () => {
  [db, tmp] = await Promise.all([createScratchDatabase("imp_seed"), createTempDir("import-seed")]);
});
afterAll(async () => {
  await Promise.all([db?.drop(), tmp?.remove()]);
});

const truncate = () => db.query("TRUNCATE products, features, styles, photos, skus, related RESTART IDENTITY");
const seed = async (products: number, extra: { crlf?: boolean; faults?: number; seed?: number } = {}) => {
  const dir = await tmp.write({});
  const summary = await generateCatalog({ products, out: dir, ...extra });
  return { dir, summary };
};
const filesOf = async (dir: string) =>
  Object.fromEntries(await Promise.all((await readdir(dir)).sort().map(async (f) => [f, await readFile(join(dir, f))] as const)));
const rowsOf = (s: SeedSummary) => Object.fromEntries(s.files.map((f) => [f.file, f.rows]));

describe("the seed generator", () => {
  it("writes byte-identical files for the same options, and other files for another seed", async () => {
    const [a, b, c] = await Promise.all([seed(300), seed(300), seed(300, { seed: 7 })]);
    const [fa, fb, fc] = await Promise.all([filesOf(a.dir), filesOf(b.dir), filesOf(c.dir)]);
    expect(Object.keys(fa)).toEqual(["features.csv", "photos.csv", "product.csv", "related.csv", "skus.csv", "styles.csv"]);
    for (const [file, bytes] of Object.entries(fa)) expect(bytes.equals(fb[file] as Buffer), file).toBe(true);
    expect(fa["product.csv"]?.equals(fc["product.csv"] as Buffer)).toBe(false);
  });

  it("writes the export's headers, a realistic fan-out and the quirks of a real export", async () => {
    const { dir, summary } = await seed(2_000);
    const rows = rowsOf(summary);
    expect(rows["product.csv"]).toBe(2_000);
    expect(rows["features.csv"]! / 2_000).toBeCloseTo(2, 0);
    expect(rows["styles.csv"]! / 2_000).toBeGreaterThan(3.3);
    expect(rows["styles.csv"]! / 2_000).toBeLessThan(3.7);
    expect(rows["photos.csv"]! / rows["styles.csv"]!).toBeCloseTo(3, 0);
    expect(rows["skus.csv"]! / rows["styles.csv"]!).toBe(6);
    expect(rows["related.csv"]! / 2_000).toBeCloseTo(4, 0);

    const text = (f: string) => readFile(join(dir, f), "utf8");
    const products = await text("product.csv");
    expect(products.startsWith("id,name,slogan,description,category,default_price\n")).toBe(true);
    expect(products).toMatch(/"[^"\n]*,[^"\n]*"/); // a quoted comma
    expect(products).toContain('""'); // a doubled quote
    expect(products).toMatch(/[^\x00-\x7f]/); // unicode
    expect(await text("styles.csv")).toMatch(/^id,productId,name,sale_price,original_price,default_style\n[\s\S]*,null,/);
    expect(await text("features.csv")).toMatch(/,null\n/);
    expect((await text("photos.csv")).split("\n", 1)[0]).toBe("id,styleId,url,thumbnail_url");
    expect((await text("skus.csv")).split("\n", 1)[0]).toBe("id,styleId,size,quantity");
    expect((await text("related.csv")).split("\n", 1)[0]).toBe("id,current_product_id,related_product_id");
  });

  it("ends every row with CRLF when asked", async () => {
    const { dir, summary } = await seed(50, { crlf: true });
    for (const f of summary.files) {
      const text = await readFile(join(dir, f.file), "utf8");
      expect(text.split("\r\n").length - 1, f.file).toBe(f.rows + 1);
    }
  });
});

describe("importing a seeded catalog", () => {
  it("loads every row and skips none", async () => {
    await truncate();
    const { dir, summary: seeded } = await seed(500, { crlf: true });
    const summary = await importCatalog({ databaseUrl: db.url, dir, cache: false });
    expect(summary.skipped).toBe(0);
    expect(summary.failedFiles).toBe(0);
    expect(Object.fromEntries(summary.files.map((f) => [f.file, f.loaded]))).toEqual(rowsOf(seeded));
    expect(await db.query("SELECT count(*)::int AS n FROM skus")).toEqual([{ n: seeded.files.find((f) => f.file === "skus.csv")?.rows }]);
  });

  it("with deliberate faults skips exactly those rows, at the lines the generator wrote them", async () => {
    await truncate();
    const { dir, summary: seeded } = await seed(3_000, { faults: 0.002 });
    const summary = await importCatalog({ databaseUrl: db.url, dir, cache: false, examples: 10 });
    expect(summary.failedFiles).toBe(0);
    for (const s of seeded.files) {
      const f = summary.files.find((r) => r.file === s.file);
      expect(s.faults, `${s.file} has faults`).toBeGreaterThan(0);
      expect(f?.skipped, s.file).toBe(s.faults);
      expect(f?.loaded, s.file).toBe(s.rows - s.faults);
      const lines = f?.rejects.flatMap((g) => g.examples.map((e) => e.line)).sort((a, b) => a - b);
      expect(lines?.slice(0, 5), s.file).toEqual(s.faultLines.slice(0, 5));
    }
  });
});

describe("the compiled commands", () => {
  const env = (extra: Record<string, string>) => ({ PATH: process.env.PATH ?? "", ...extra });

  it("seed then import, printing the summary and invalidating the cache", async () => {
    await truncate();
    const out = join(tmp.path, "cli");
    const prefix = `ingest-test-${inject("runId")}-import-cli:cache`;
    const seeded = await run(process.execPath, ["apps/importer/dist/cli/seed.js", "--products", "50", "--out", out], { cwd: ROOT, env: env({}) });
    expect(seeded.stdout).toMatch(/seed: wrote [\d,]+ rows .* for 50 products/);

    const redis = new Redis(inject("redisUrl"));
    try {
      const imported = await run(process.execPath, ["apps/importer/dist/cli/import.js", out], {
        cwd: ROOT,
        env: env({ DATABASE_URL: db.url, CACHE_REDIS_URL: inject("redisUrl"), CACHE_PREFIX: prefix }),
      });
      expect(imported.stdout).toMatch(/product\.csv\s+50\s+50\s+50\s+0\s+0\s+0/);
      expect(imported.stdout).toMatch(/total: [\d,]+ rows read, [\d,]+ loaded, 0 skipped in .* rows\/s\)/);
      expect(imported.stdout).toContain(`cache: invalidated (prefix ${prefix})`);
      // Not a terminal: plain progress lines on stderr.
      expect(imported.stderr).toContain("import: 6 file(s)");
      expect(imported.stderr).toMatch(/import: skus\.csv: [\d,]+ rows loaded/);
      expect(await redis.get(`${prefix}:ver:all`)).toEqual(expect.any(String));
    } finally {
      await redis.del(`${prefix}:ver:all`);
      await redis.quit();
    }
    expect(await db.query("SELECT count(*)::int AS n FROM products")).toEqual([{ n: 50 }]);
  });

  it("exit with 1 when the folder holds no catalog file, and 2 without a folder", async () => {
    const empty = await tmp.write({});
    const noFiles = run(process.execPath, ["apps/importer/dist/cli/import.js", empty], { cwd: ROOT, env: env({ DATABASE_URL: db.url, CACHE_REDIS_URL: "redis://127.0.0.1:1" }) });
    await expect(noFiles).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining("no catalog files") });
    const usage = run(process.execPath, ["apps/importer/dist/cli/import.js"], { cwd: ROOT, env: env({}) });
    await expect(usage).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining("usage: import DIR") });
  });
});
