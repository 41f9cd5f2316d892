import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { importCatalog } from "../src/import/import-catalog.js";
import { generateCatalog } from "../src/seed/generate-catalog.js";
import { createScratchDatabase, createTempDir, type Scratch, type TempDir } from "../../../test/support/scratch.js";

const TABLES = ["products", "features", "styles", "photos", "skus", "related"] as const;

let db: Scratch;
let tmp: TempDir;
beforeAll(async () => {
  [db, tmp] = await Promise.all([createScratchDatabase("imp_reload"), createTempDir("import-reload")]);
});
afterAll(async () => {
  await Promise.all([db?.drop(), tmp?.remove()]);
});
beforeEach(async () => {
  await db.query(`TRUNCATE ${TABLES.join(", ")} RESTART IDENTITY`);
});

const load = (dir: string) => importCatalog({ databaseUrl: db.url, dir, cache: false });
const counts = async () =>
  Object.fromEntries(
    await Promise.all(TABLES.map(async (t) => [t, (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${t}`))[0]?.n] as const)),
  );
const seeded = async (products: number) => {
  const dir = await tmp.write({});
  await generateCatalog({ products, out: dir });
  return dir;
};

describe("each file is applied whole or not at all", () => {
  it("a file whose header lacks a column loads nothing, and the other files still load", async () => {
    const dir = await tmp.write({
      "product.csv": "id,name,slogan,description,category,default_price\n1,A,s,d,c,1\n",
      "features.csv": "id,product_id,feature\n1,1,Fabric\n",
      "styles.csv": "id,productId,name,sale_price,original_price,default_style\n1,1,S,null,1,1\n",
    });
    const summary = await load(dir);
    const features = summary.files.find((f) => f.file === "features.csv");
    expect(features).toMatchObject({ status: "failed", loaded: 0 });
    expect(features?.error).toMatch(/header lacks value/);
    expect(summary.failedFiles).toBe(1);
    expect(await counts()).toMatchObject({ products: 1, features: 0, styles: 1 });
  });

  it("an unterminated quote swallowing the rest of the file fails that file, though rows before it were already streamed", async () => {
    const good = Array.from({ length: 5_000 }, (_, i) => `${i + 1},1,M,${i % 50}`).join("\n");
    const dir = await tmp.write({
      "product.csv": "id,name,slogan,description,category,default_price\n1,A,s,d,c,1\n",
      "styles.csv": "id,productId,name,sale_price,original_price,default_style\n1,1,S,null,1,1\n",
      "skus.csv": `id,styleId,size,quantity\n${good}\n5001,1,"XL,5\n${"x".repeat(1_200_000)}\n5002,1,S,1\n`,
    });
    const summary = await load(dir);
    const skus = summary.files.find((f) => f.file === "skus.csv");
    expect(skus).toMatchObject({ status: "failed", loaded: 0 });
    expect(skus?.error).toMatch(/record at line 5002 is over/);
    expect(await counts()).toMatchObject({ products: 1, styles: 1, skus: 0 });
  });

  it("a file the database rejects halfway is rolled back whole, keeping what an earlier import loaded", async () => {
    const before = "id,styleId,size,quantity\n1,1,S,1\n2,1,M,2\n";
    const dir = await tmp.write({
      "product.csv": "id,name,slogan,description,category,default_price\n1,A,s,d,c,1\n",
      "styles.csv": "id,productId,name,sale_price,original_price,default_style\n1,1,S,null,1,1\n",
      "skus.csv": before,
    });
    await load(dir);
    // A rule the importer does not know of, so the failure comes from the database mid-statement.
    await db.query("ALTER TABLE skus ADD CONSTRAINT test_small_quantity CHECK (quantity < 1000)");
    try {
      await writeFile(join(dir, "skus.csv"), "id,styleId,size,quantity\n1,1,S,7\n2,1,M,8\n3,1,L,9\n4,1,XL,5000\n");
      const summary = await load(dir);
      const skus = summary.files.find((f) => f.file === "skus.csv");
      expect(skus).toMatchObject({ status: "failed", loaded: 0, inserted: 0, updated: 0 });
      expect(skus?.error).toMatch(/test_small_quantity/);
      expect(await db.query("SELECT id, quantity FROM skus ORDER BY id")).toEqual([
        { id: 1, quantity: 1 },
        { id: 2, quantity: 2 },
      ]);
    } finally {
      await db.query("ALTER TABLE skus DROP CONSTRAINT test_small_quantity");
    }
  });
});

describe("re-importing", () => {
  it("the same files a second time duplicates nothing and rewrites nothing", async () => {
    const dir = await seeded(60);
    const first = await load(dir);
    const after = await counts();
    const stamps = await db.query("SELECT id, updated_at FROM products ORDER BY id");
    const second = await load(dir);

    expect(first.skipped).toBe(0);
    expect(second.skipped).toBe(0);
    expect(await counts()).toEqual(after);
    for (const [i, f] of second.files.entries()) {
      expect(f).toMatchObject({ status: "loaded", inserted: 0, updated: 0, unchanged: first.files[i]?.loaded });
      expect(f.loaded).toBe(first.files[i]?.inserted);
    }
    expect(await db.query("SELECT id, updated_at FROM products ORDER BY id")).toEqual(stamps);
  });

  it("updates exactly the rows whose values changed", async () => {
    const dir = await seeded(40);
    await load(dir);
    const edit = async (file: string, id: number, change: (fields: string) => string) => {
      const path = join(dir, file);
      const lines = (await readFile(path, "utf8")).split("\n");
      const at = lines.findIndex((l) => l.startsWith(`${id},`));
      lines[at] = change(lines[at] as string);
      await writeFile(path, lines.join("\n"));
    };
    await edit("product.csv", 7, (l) => l.replace(/,[^,]+$/, ",1234.56"));
    await edit("features.csv", 3, () => `3,2,"Fabric","Edited, again"`);
    await edit("skus.csv", 10, (l) => l.replace(/,\d+$/, ",999"));
    const untouched = await db.query("SELECT id, updated_at FROM products WHERE id <> 7 ORDER BY id");

    const summary = await load(dir);
    const updated = Object.fromEntries(summary.files.map((f) => [f.file, [f.inserted, f.updated]]));
    expect(updated).toEqual({
      "product.csv": [0, 1],
      "features.csv": [0, 1],
      "styles.csv": [0, 0],
      "photos.csv": [0, 0],
      "skus.csv": [0, 1],
      "related.csv": [0, 0],
    });
    expect(await db.query("SELECT default_price FROM products WHERE id = 7")).toEqual([{ default_price: "1234.56" }]);
    expect(await db.query("SELECT product_id, feature, value FROM features WHERE id = 3")).toEqual([
      { product_id: 2, feature: "Fabric", value: "Edited, again" },
    ]);
    expect(await db.query("SELECT quantity FROM skus WHERE id = 10")).toEqual([{ quantity: 999 }]);
    expect(await db.query("SELECT id, updated_at FROM products WHERE id <> 7 ORDER BY id")).toEqual(untouched);
  });
});

describe("identity sequences", () => {
  it("move past the imported ids, so rows created afterwards get new ids", async () => {
    const dir = await seeded(30);
    await load(dir);
    const max = async (t: string) => (await db.query<{ m: number }>(`SELECT max(id) AS m FROM ${t}`))[0]?.m ?? 0;
    const created = async (t: string, columns: string, values: string) =>
      (await db.query<{ id: number }>(`INSERT INTO ${t} (${columns}) VALUES (${values}) RETURNING id`))[0]?.id;

    const expected = Object.fromEntries(await Promise.all(TABLES.map(async (t) => [t, (await max(t)) + 1] as const)));
    expect({
      products: await created("products", "name, category, default_price", "'new', 'c', 1"),
      features: await created("features", "product_id, feature", "1, 'f'"),
      styles: await created("styles", "product_id, name, original_price", "1, 's', 1"),
      photos: await created("photos", "style_id", "1"),
      skus: await created("skus", "style_id, size", "1, 'M'"),
      related: await created("related", "product_id, related_product_id", "1, 2"),
    }).toEqual(expected);
  });

  it("move past the imported ids only, not up to a product a client PUT far above them", async () => {
    await db.query("INSERT INTO products (id, name, category, default_price) VALUES (2147483647, 'put at the largest id', 'c', 1)");
    await load(await seeded(5));
    expect(await db.query("SELECT nextval(pg_get_serial_sequence('products', 'id'))::int AS id")).toEqual([{ id: 6 }]);
  });

  it("never move backwards", async () => {
    await db.query("SELECT setval(pg_get_serial_sequence('products', 'id'), 10000)");
    await load(await seeded(5));
    expect(await db.query("SELECT nextval(pg_get_serial_sequence('products', 'id'))::int AS id")).toEqual([{ id: 10_001 }]);
  });
});

describe("the catalog cache after an import", () => {
  it("is invalidated as a whole in the cache Redis", async () => {
    const prefix = `ingest-test-${inject("runId")}-import:cache`;
    const redis = new Redis(inject("redisUrl"));
    try {
      await redis.del(`${prefix}:ver:all`);
      const summary = await importCatalog({ databaseUrl: db.url, dir: await seeded(3), cache: { url: inject("redisUrl"), prefix } });
      expect(summary.cache).toEqual({ status: "invalidated", detail: `prefix ${prefix}` });
      expect(await redis.get(`${prefix}:ver:all`)).toEqual(expect.any(String));
    } finally {
      await redis.del(`${prefix}:ver:all`);
      await redis.quit();
    }
  });

  it("being unreachable does not fail the import: the summary says so", async () => {
    const started = Date.now();
    const summary = await importCatalog({ databaseUrl: db.url, dir: await seeded(3), cache: { url: "redis://127.0.0.1:1", prefix: "x" } });
    expect(summary.failedFiles).toBe(0);
    expect(summary.loaded).toBeGreaterThan(0);
    expect(summary.cache.status).toBe("failed");
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
