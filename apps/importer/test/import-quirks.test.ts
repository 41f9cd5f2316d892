import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importCatalog, type ImportSummary } from "../src/import/import-catalog.js";
import { formatSummary } from "../src/import/summary.js";
import { createScratchDatabase, createTempDir, type Scratch, type TempDir } from "../../../test/support/scratch.js";

// One export with every quirk a real one has; line numbers matter, they are asserted.
const CRLF = (lines: string[]) => lines.join("\r\n") + "\r\n";
const LF = (lines: string[]) => lines.join("\n") + "\n";

const QUIRKY = {
  "product.csv": CRLF([
    "id,name,slogan,description,category,default_price",
    `1,"Camo Onesie","Blend in, stand out","He said ""hi"", then left",Jackets,140`,
    `2,Café Crème ☕,null,"two\r\nlines, with a comma",Kicks,99.5`,
    "3,Bad Price,s,d,c,12abc",
    "4,Too,Many,Fields,Here,1,2",
    "5,Negative,s,d,c,-5",
    `6,"東京 Tee",,"",Shirts,0.99`,
    "",
    "7,Short",
  ]),
  "features.csv": LF([
    "id,product_id,feature,value",
    "1,1,Fabric,Canvas",
    "2,1,Buttons,null",
    `3,1,Lenses,"null"`,
    "4,99,Orphan,x",
    `5,2,"Made In","Việt Nam"`,
    "6,x,Bad,ref",
    "7,3,Price,x",
  ]),
  "styles.csv": LF([
    "id,productId,name,sale_price,original_price,default_style",
    "1,1,Forest Green & Black,null,140,1",
    `2,1,"Desert, Brown",100,140,false`,
    "3,2,Red,,99.50,true",
    "4,77,Orphan,null,1,0",
    "5,2,BadBool,null,1,maybe",
    "6,2,BadSale,1.234,2,0",
  ]),
  "photos.csv": LF([
    "id,styleId,url,thumbnail_url",
    "1,1,https://a/1.jpg?w=1&h=2,https://a/1t.jpg",
    "2,4,https://orphan,x",
    "3,2,null,null",
  ]),
  "skus.csv": LF([
    "id,styleId,size,quantity",
    "1,1,XS,8",
    "2,1,S,ten",
    `3,3,"7.5",0`,
    "4,3,M,99999999999",
    "5,1,S,3",
    "5,1,S,4",
  ]),
  "related.csv": LF([
    "id,current_product_id,related_product_id",
    "1,1,2",
    "2,1,500",
    "3,2,1",
    "4,42,1",
    "5,2,0",
  ]),
};

const EXPECTED_SKIPS = [
  "features.csv:5: missing parent product (product_id 99)",
  "features.csv:7: bad number in product_id (\"x\")",
  "features.csv:8: missing parent product (product_id 3)",
  "photos.csv:3: missing parent style (style_id 4)",
  "product.csv:5: bad number in default_price (\"12abc\")",
  "product.csv:6: wrong number of fields (expected 6 fields, got 7)",
  "product.csv:7: bad number in default_price (\"-5\")",
  "product.csv:10: wrong number of fields (expected 6 fields, got 2)",
  "related.csv:5: missing parent product (product_id 42)",
  "related.csv:6: related_product_id out of range (\"0\")",
  "skus.csv:3: bad number in quantity (\"ten\")",
  "skus.csv:5: bad number in quantity (\"99999999999\")",
  "skus.csv:6: repeated id (the last line with it wins) (id 5, also on a later line)",
  "styles.csv:5: missing parent product (product_id 77)",
  "styles.csv:6: bad boolean in default_style (\"maybe\")",
  "styles.csv:7: bad number in sale_price (\"1.234\")",
].sort();

function skips(summary: ImportSummary): string[] {
  return summary.files
    .flatMap((f) => f.rejects.flatMap((g) => g.examples.map((e) => `${f.file}:${e.line}: ${g.reason} (${e.detail})`)))
    .sort();
}

let db: Scratch;
let tmp: TempDir;
beforeAll(async () => {
  [db, tmp] = await Promise.all([createScratchDatabase("imp_quirks"), createTempDir("import-quirks")]);
});
afterAll(async () => {
  await Promise.all([db?.drop(), tmp?.remove()]);
});

const truncate = () => db.query("TRUNCATE products, features, styles, photos, skus, related RESTART IDENTITY");
const load = (dir: string, extra: { trustParents?: boolean } = {}) =>
  importCatalog({ databaseUrl: db.url, dir, cache: false, examples: 10, ...extra });

describe("importing an export with every quirk", () => {
  for (const trustParents of [true, false]) {
    it(`loads the good rows and skips each bad one with its file, line and reason (${trustParents ? "parents checked set-based only" : "foreign-key triggers on"})`, async () => {
      await truncate();
      const summary = await load(await tmp.write(QUIRKY), { trustParents });

      expect(summary.failedFiles).toBe(0);
      expect(skips(summary)).toEqual(EXPECTED_SKIPS);
      const byFile = Object.fromEntries(summary.files.map((f) => [f.file, [f.status, f.rows, f.loaded, f.skipped]]));
      expect(byFile).toEqual({
        "product.csv": ["loaded", 7, 3, 4],
        "features.csv": ["loaded", 7, 4, 3],
        "styles.csv": ["loaded", 6, 3, 3],
        "photos.csv": ["loaded", 3, 2, 1],
        "skus.csv": ["loaded", 6, 3, 3],
        "related.csv": ["loaded", 5, 3, 2],
      });
      expect(summary.skipped).toBe(16);

      expect(await db.query("SELECT id, name, slogan, description, category, default_price FROM products ORDER BY id")).toEqual([
        { id: 1, name: "Camo Onesie", slogan: "Blend in, stand out", description: 'He said "hi", then left', category: "Jackets", default_price: "140.00" },
        { id: 2, name: "Café Crème ☕", slogan: null, description: "two\r\nlines, with a comma", category: "Kicks", default_price: "99.50" },
        { id: 6, name: "東京 Tee", slogan: "", description: "", category: "Shirts", default_price: "0.99" },
      ]);
      expect(await db.query("SELECT id, product_id, feature, value FROM features ORDER BY id")).toEqual([
        { id: 1, product_id: 1, feature: "Fabric", value: "Canvas" },
        { id: 2, product_id: 1, feature: "Buttons", value: null },
        { id: 3, product_id: 1, feature: "Lenses", value: null },
        { id: 5, product_id: 2, feature: "Made In", value: "Việt Nam" },
      ]);
      expect(await db.query("SELECT id, product_id, name, sale_price, original_price, default_style FROM styles ORDER BY id")).toEqual([
        { id: 1, product_id: 1, name: "Forest Green & Black", sale_price: null, original_price: "140.00", default_style: true },
        { id: 2, product_id: 1, name: "Desert, Brown", sale_price: "100.00", original_price: "140.00", default_style: false },
        { id: 3, product_id: 2, name: "Red", sale_price: null, original_price: "99.50", default_style: true },
      ]);
      expect(await db.query("SELECT id, style_id, url, thumbnail_url FROM photos ORDER BY id")).toEqual([
        { id: 1, style_id: 1, url: "https://a/1.jpg?w=1&h=2", thumbnail_url: "https://a/1t.jpg" },
        { id: 3, style_id: 2, url: null, thumbnail_url: null },
      ]);
      expect(await db.query("SELECT id, style_id, size, quantity FROM skus ORDER BY id")).toEqual([
        { id: 1, style_id: 1, size: "XS", quantity: 8 },
        { id: 3, style_id: 3, size: "7.5", quantity: 0 },
        { id: 5, style_id: 1, size: "S", quantity: 4 },
      ]);
      expect(await db.query("SELECT id, product_id, related_product_id FROM related ORDER BY id")).toEqual([
        { id: 1, product_id: 1, related_product_id: 2 },
        { id: 2, product_id: 1, related_product_id: 500 },
        { id: 3, product_id: 2, related_product_id: 1 },
      ]);
    });
  }

  it("prints a summary with rows per file, the skip reasons and the first examples as file:line", async () => {
    await truncate();
    const text = formatSummary(await load(await tmp.write(QUIRKY)));
    expect(text).toMatch(/product\.csv\s+7\s+3\s+3\s+0\s+0\s+4/);
    expect(text).toContain("product.csv: 2 × bad number in default_price");
    expect(text).toContain('product.csv:5: bad number in default_price ("12abc")');
    expect(text).toContain("skus.csv:6: repeated id");
    expect(text).toMatch(/total: 34 rows read, 18 loaded, 16 skipped in .* rows\/s\)/);
  });

  it("reads a UTF-8 byte order mark, a last line without a newline and tab or backslash inside fields", async () => {
    await truncate();
    const dir = await tmp.write({
      "product.csv": "\ufeffid,name,slogan,description,category,default_price\n1,Tab\there,back\\slash,\\N is text,c,1",
    });
    const summary = await load(dir);
    expect(summary.files.find((f) => f.file === "product.csv")).toMatchObject({ status: "loaded", loaded: 1, skipped: 0 });
    expect(await db.query("SELECT name, slogan, description FROM products")).toEqual([
      { name: "Tab\there", slogan: "back\\slash", description: "\\N is text" },
    ]);
  });

  it("skips blank required text, text over its column's limit and NUL characters; reads every number PostgreSQL would", async () => {
    await truncate();
    const dir = await tmp.write({
      "product.csv": LF([
        "id,name,slogan,description,category,default_price",
        "1,  ,s,d,c,1",
        `2,${"é".repeat(256)},s,d,c,1`,
        `3,${"é".repeat(255)},s,d,c,1`,
        "4,Nul,s,a\u0000b,c,1",
        "5,Exp,s,d,c,1e3",
        "6,Dot,s,d,c,.5",
        "7,Trail,s,d,c,12.",
        "8,Spaces,s,d,c, 7.25 ",
        "9,Big,s,d,c,12345678901",
        "10,null,s,d,c,1",
      ]),
    });
    const summary = await load(dir);
    expect(skips(summary)).toEqual([
      'product.csv:10: bad number in default_price ("12345678901")',
      'product.csv:11: missing name ("null")',
      'product.csv:2: missing name ("  ")',
      `product.csv:3: name longer than 255 characters ("${"é".repeat(40)}…")`,
      "product.csv:5: NUL character in a field (description)",
      'product.csv:6: bad number in default_price ("1e3")',
    ]);
    expect(await db.query("SELECT id, char_length(name) AS n, default_price FROM products ORDER BY id")).toEqual([
      { id: 3, n: 255, default_price: "1.00" },
      { id: 6, n: 3, default_price: "0.50" },
      { id: 7, n: 5, default_price: "12.00" },
      { id: 8, n: 6, default_price: "7.25" },
    ]);
  });

  it("takes the header's column order and aliases, and ignores extra columns", async () => {
    await truncate();
    const dir = await tmp.write({
      "product.csv": "default_price,name,id,category,slogan,description,extra\n5,Reordered,10,c,s,d,ignored\n",
      "styles.csv": "id,product_id,name,sale_price,original_price,default_style\n20,10,S,null,5,t\n",
    });
    const summary = await load(dir);
    expect(summary.loaded).toBe(2);
    expect(await db.query("SELECT id, name, default_price FROM products")).toEqual([{ id: 10, name: "Reordered", default_price: "5.00" }]);
    expect(await db.query("SELECT id, product_id, default_style FROM styles")).toEqual([{ id: 20, product_id: 10, default_style: true }]);
  });

  it("skips absent files with a note and loads the others", async () => {
    await truncate();
    const summary = await load(await tmp.write({ "product.csv": QUIRKY["product.csv"] }));
    expect(summary.files.map((f) => [f.file, f.status])).toEqual([
      ["product.csv", "loaded"],
      ["features.csv", "absent"],
      ["styles.csv", "absent"],
      ["photos.csv", "absent"],
      ["skus.csv", "absent"],
      ["related.csv", "absent"],
    ]);
    expect(formatSummary(summary)).toContain("features.csv   not found, skipped");
    expect(await db.query("SELECT count(*)::int AS n FROM products")).toEqual([{ n: 3 }]);
  });

  it("a quote left open skips only its own line: the lines it swallowed are read on their own and every line is accounted for", async () => {
    await truncate();
    // 24 photos, quoted as the export quotes them; line 11 (photo 10) loses its closing
    // quote, line 18 (photo 17) too, and the next quote in the file is three lines on.
    const photo = (n: number) => `${n},1,"https://img.example/${n}.jpg","https://img.example/${n}-t.jpg"`;
    const lines = Array.from({ length: 24 }, (_, i) => photo(i + 1));
    lines[9] = `10,1,"https://img.example/10.jpg","https://img.example/10-t.jpg`;
    lines[16] = `17,1,"https://img.example/17.jpg,https://img.example/17-t.jpg`;
    lines[17] = "18,1,https://img.example/18.jpg,https://img.example/18-t.jpg";
    lines[18] = "19,1,https://img.example/19.jpg,https://img.example/19-t.jpg";
    const summary = await load(
      await tmp.write({
        "product.csv": LF(["id,name,slogan,description,category,default_price", "1,A,s,d,c,1"]),
        "styles.csv": LF(["id,productId,name,sale_price,original_price,default_style", "1,1,S,null,1,1"]),
        "photos.csv": CRLF(["id,styleId,url,thumbnail_url", ...lines]),
      }),
    );
    const photos = summary.files.find((f) => f.file === "photos.csv")!;
    expect(photos).toMatchObject({ status: "loaded", rows: 24, loaded: 22, skipped: 2 });
    expect(photos.loaded + photos.skipped).toBe(lines.length);
    expect(skips(summary)).toEqual(["photos.csv:11: unclosed quote (thumbnail_url)", "photos.csv:18: unclosed quote (url)"]);
    const ids = (await db.query<{ id: number }>("SELECT id FROM photos ORDER BY id")).map((r) => r.id);
    expect(ids).toEqual(Array.from({ length: 24 }, (_, i) => i + 1).filter((id) => id !== 10 && id !== 17));
    expect(await db.query("SELECT url, thumbnail_url FROM photos WHERE id = 11")).toEqual([
      { url: "https://img.example/11.jpg", thumbnail_url: "https://img.example/11-t.jpg" },
    ]);
    const text = formatSummary(summary);
    expect(text).toContain("photos.csv:11: unclosed quote (thumbnail_url)");
    expect(text).toMatch(/photos\.csv\s+24\s+22\s+22\s+0\s+0\s+2/);
  });

  it("a quote that never closes again skips its line and loads every line after it", async () => {
    await truncate();
    const summary = await load(
      await tmp.write({
        "product.csv": LF([
          "id,name,slogan,description,category,default_price",
          "1,A,s,d,c,1",
          `2,"B,s,d,c,2`,
          "3,C,s,d,c,3",
          "4,D,s,d,c,4",
          // A field that truly spans lines still makes one row.
          `5,E,s,"one\ntwo",c,5`,
          `6,F,s,d,c,"6`,
        ]),
      }),
    );
    const products = summary.files.find((f) => f.file === "product.csv")!;
    expect(products).toMatchObject({ status: "loaded", rows: 6, loaded: 4, skipped: 2 });
    expect(skips(summary)).toEqual(["product.csv:3: unclosed quote (name)", "product.csv:8: unclosed quote (default_price)"]);
    expect(await db.query("SELECT id, name, description FROM products ORDER BY id")).toEqual([
      { id: 1, name: "A", description: "d" },
      { id: 3, name: "C", description: "d" },
      { id: 4, name: "D", description: "d" },
      { id: 5, name: "E", description: "one\ntwo" },
    ]);
  });

  it("refuses a folder that does not exist", async () => {
    await expect(load(`${tmp.path}/missing`)).rejects.toThrow(/is not a directory/);
  });
});
