import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedCatalog } from "./support/catalog-fixtures.js";
import { request, startApi, testEnv, type Api } from "./support/harness.js";
import { createScratchDb, type ScratchDb } from "./support/scratch-db.js";

// The storefront's shapes, read from a catalog of this file's own.
const { prefix } = testEnv("catalog-reads");
let api: Api;
let scratch: ScratchDb;

beforeAll(async () => {
  scratch = await createScratchDb("catalog_reads");
  await seedCatalog(scratch.db);
  api = await startApi(prefix, { DATABASE_URL: scratch.url });
});
afterAll(async () => {
  await api?.close();
  await scratch?.drop();
});

const get = (path: string, headers: Record<string, string> = {}) => request(api.url, "GET", path, { headers });

function expectProblem(r: Awaited<ReturnType<typeof get>>, status: number) {
  expect(r.status, r.text).toBe(status);
  expect(r.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  expect(r.body).toMatchObject({ type: expect.any(String), title: expect.any(String), status, detail: expect.any(String) });
}

/** Product 1 of the fixtures, as the list and the product routes show it. */
const CAMO_ONESIE = {
      id: 1,
      name: "Camo Onesie",
      slogan: "Blend in to your crowd",
      description: "The So Fatigues will wake you up and fit you in.",
      category: "Jackets",
      default_price: "140.00",
};

describe("GET /products/:id", () => {
  it("answers the product with its features, prices as strings and a null feature value", async () => {
    const r = await get("/products/1");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^application\/json/);
    expect(r.body).toEqual({
      ...CAMO_ONESIE,
      features: [
        { feature: "Fabric", value: "Canvas" },
        { feature: "Buttons", value: "Brass" },
        { feature: "Lining", value: null },
      ],
    });
    // Field order as the storefront client's fixtures have it.
    expect(Object.keys(r.body)).toEqual(["id", "name", "slogan", "description", "category", "default_price", "features"]);
  });

  it("a product without features has an empty list and null texts", async () => {
    const r = await get("/products/2");
    expect(r.body).toEqual({
      id: 2,
      name: "Bright Future Sunglasses",
      slogan: null,
      description: null,
      category: "Accessories",
      default_price: "69.50",
      features: [],
    });
  });

  it("an unknown id is 404 and a malformed id is 400, both problem+json", async () => {
    expectProblem(await get("/products/424242"), 404);
    for (const bad of ["abc", "0", "-1", "1.5", "01", "2147483648", "99999999999"]) expectProblem(await get(`/products/${bad}`), 400);
  });
});

describe("GET /products/:id/styles", () => {
  it("answers every style with photos, skus keyed by sku id, sale_price null when none and default?", async () => {
    const r = await get("/products/1/styles");
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      product_id: "1",
      results: [
        {
          style_id: 1,
          name: "Forest Green & Black",
          original_price: "140.00",
          sale_price: null,
          "default?": true,
          photos: [
            { thumbnail_url: "https://img.example/1-thumb.jpg", url: "https://img.example/1.jpg" },
            { thumbnail_url: "https://img.example/2-thumb.jpg", url: "https://img.example/2.jpg" },
          ],
          skus: { "1": { quantity: 8, size: "XS" }, "2": { quantity: 16, size: "S" }, "3": { quantity: 17, size: "M" } },
        },
        {
          style_id: 2,
          name: "Desert Brown & Tan",
          original_price: "140.00",
          sale_price: "100.00",
          "default?": false,
          photos: [{ thumbnail_url: null, url: "https://img.example/3.jpg" }],
          skus: { "4": { quantity: 0, size: "XL" } },
        },
        {
          style_id: 3,
          name: "Ocean Blue",
          original_price: "140.00",
          sale_price: null,
          "default?": false,
          photos: [{ thumbnail_url: null, url: null }],
          skus: { null: { quantity: null, size: null } },
        },
      ],
    });
  });

  it("a style without photos or skus answers the original API's placeholders, byte for byte, so photos[0].url reads null", async () => {
    const r = await get("/products/1/styles");
    const ocean = r.body.results.find((s: { style_id: number }) => s.style_id === 3);
    expect(ocean.photos[0].url).toBeNull();
    expect(ocean.photos[0].thumbnail_url).toBeNull();
    expect(Object.keys(ocean.skus)).toEqual(["null"]);
    expect(r.text).toContain('"photos" : [{"thumbnail_url":null,"url":null}]');
    expect(r.text).toContain('"skus" : {"null":{"quantity":null,"size":null}}');
  });

  it("a product without styles has an empty result list; an unknown product is 404", async () => {
    expect((await get("/products/2/styles")).body).toEqual({ product_id: "2", results: [] });
    expectProblem(await get("/products/424242/styles"), 404);
    expectProblem(await get("/products/x/styles"), 400);
  });
});

describe("GET /products/:id/related", () => {
  it("answers the related ids in order, also ids that are not (yet) products", async () => {
    const r = await get("/products/1/related");
    expect(r.status).toBe(200);
    expect(r.body).toEqual([2, 3, 8, 999999]);
  });

  it("no related products is an empty list; an unknown product is 404", async () => {
    expect((await get("/products/2/related")).body).toEqual([]);
    expectProblem(await get("/products/424242/related"), 404);
  });
});

describe("GET /products", () => {
  it("defaults to page 1 with 5 products ordered by id, without features", async () => {
    const r = await get("/products");
    expect(r.status).toBe(200);
    expect(r.body.map((p: { id: number }) => p.id)).toEqual([1, 2, 3, 4, 5]);
    expect(r.body[0]).toEqual(CAMO_ONESIE);
  });

  it("pages by page and count; past the end is an empty list", async () => {
    expect((await get("/products?page=2&count=4")).body.map((p: { id: number }) => p.id)).toEqual([5, 6, 7, 8]);
    expect((await get("/products?page=3&count=5")).body.map((p: { id: number }) => p.id)).toEqual([11, 12]);
    expect((await get("/products?count=100")).body).toHaveLength(12);
    expect((await get("/products?page=99")).body).toEqual([]);
  });

  it("a count over 100, zero, negative, fractional or repeated values are 400 with the parameter named", async () => {
    for (const q of ["count=101", "count=0", "page=0", "page=-1", "count=2.5", "page=abc", "count=", "page=1&page=2"]) {
      const r = await get(`/products?${q}`);
      expectProblem(r, 400);
      expect(r.body.errors[0].path).toMatch(/^query\/(page|count)$/);
    }
  });
});

describe("HTTP caching", () => {
  it("every read carries X-Cache, a strong ETag from the content and Cache-Control", async () => {
    for (const path of ["/products", "/products/1", "/products/1/styles", "/products/1/related"]) {
      const r = await get(path);
      expect(r.headers.get("x-cache")).toMatch(/^(HIT|STALE|MISS|BYPASS)$/);
      expect(r.headers.get("etag")).toMatch(/^"[A-Za-z0-9_-]+"$/);
      expect(r.headers.get("cache-control")).toBe("public, max-age=0, must-revalidate");
    }
  });

  it("a matching If-None-Match gets 304 without a body; another tag gets the body", async () => {
    const first = await get("/products/1/styles");
    const etag = first.headers.get("etag")!;
    const again = await get("/products/1/styles", { "if-none-match": etag });
    expect(again.status).toBe(304);
    expect(again.text).toBe("");
    expect(again.headers.get("etag")).toBe(etag);
    expect(again.headers.get("x-cache")).toBe("HIT");
    expect((await get("/products/1/styles", { "if-none-match": `"other", W/${etag}` })).status).toBe(304);
    expect((await get("/products/1/styles", { "if-none-match": "*" })).status).toBe(304);
    const other = await get("/products/1/styles", { "if-none-match": '"not-it"' });
    expect(other.status).toBe(200);
    expect(other.body.product_id).toBe("1");
  });

  it("different content has a different ETag and the same content the same one", async () => {
    const a = await get("/products/1");
    const b = await get("/products/2");
    expect(a.headers.get("etag")).not.toBe(b.headers.get("etag"));
    expect((await get("/products/1")).headers.get("etag")).toBe(a.headers.get("etag"));
  });

  it("HEAD answers the headers of GET without a body", async () => {
    const r = await request(api.url, "HEAD", "/products/1");
    expect(r.status).toBe(200);
    expect(r.text).toBe("");
    expect(r.headers.get("etag")).toBe((await get("/products/1")).headers.get("etag"));
  });

  it("writing to styles or related is 405 with Allow", async () => {
    const r = await request(api.url, "POST", "/products/1/styles", { json: {} });
    expectProblem(r, 405);
    expect(r.headers.get("allow")).toBe("GET, HEAD");
  });
});

describe("the OpenAPI document", () => {
  it("describes the answers as they are: each read validates against its schema, placeholders included", async () => {
    const doc = (await get("/openapi.json")).body;
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    // Each 200 schema on its own, with the document's components beside it ($id-less:
    // the request schemas carry theirs, which would clash once gathered).
    const $defs = JSON.parse(JSON.stringify(doc.components.schemas, (k, v) => (k === "$id" ? undefined : v)));
    const schemaOf = (path: string) => {
      const schema = doc.paths[path].get.responses["200"].content["application/json"].schema;
      return ajv.compile(JSON.parse(JSON.stringify({ ...schema, $defs }).replaceAll("#/components/schemas/", "#/$defs/")));
    };
    const answers: [string, string][] = [
      ["/products/{id}/styles", "/products/1/styles"],
      ["/products/{id}/styles", "/products/2/styles"],
      ["/products/{id}", "/products/1"],
      ["/products/{id}", "/products/2"],
      ["/products", "/products?count=12"],
      ["/products/{id}/related", "/products/1/related"],
    ];
    for (const [path, url] of answers) {
      const validate = schemaOf(path);
      const body = (await get(url)).body;
      expect(validate(body), `${url}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
    // A style without photos or skus is not allowed to look empty.
    const styles = doc.components.schemas.Styles.properties.results.items.properties;
    expect(styles.photos.minItems).toBe(1);
    expect(styles.skus.minProperties).toBe(1);
    expect(schemaOf("/products/{id}/styles")({ product_id: "1", results: [{ style_id: 1, name: "x", original_price: "1.00", sale_price: null, "default?": true, photos: [], skus: {} }] })).toBe(false);
  });
});
