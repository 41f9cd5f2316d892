// A storefront page on its own origin calling the API from a real browser (Chromium).
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedCatalog } from "./support/catalog-fixtures.js";
import { CHROMIUM_ARGS, findChromium } from "./support/chromium.js";
import { request, startApi, testEnv, type Api } from "./support/harness.js";
import { createScratchDb, type ScratchDb } from "./support/scratch-db.js";

const { prefix } = testEnv("cors-browser");
let scratch: ScratchDb;
let store: Server;
let storeOrigin: string;
let api: Api;
let browser: Browser;

beforeAll(async () => {
  const executablePath = findChromium();
  scratch = await createScratchDb("cors_browser");
  await seedCatalog(scratch.db);
  // The storefront: any page will do, what matters is the origin it is served from.
  store = createServer((_req, res) => {
    res.setHeader("Content-Type", "text/html; charset=utf-8");
    res.end("<!doctype html><title>storefront</title>");
  });
  store.listen(0, "127.0.0.1");
  await once(store, "listening");
  storeOrigin = `http://127.0.0.1:${(store.address() as AddressInfo).port}`;
  api = await startApi(prefix, { DATABASE_URL: scratch.url, CORS_ORIGINS: storeOrigin, RATE_LIMIT_PER_MIN: "0" });
  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
}, 900_000);

afterAll(async () => {
  await browser?.close();
  await api?.close();
  store?.closeAllConnections();
  store?.close();
  await scratch?.drop();
});

describe("a storefront in a real browser", () => {
  it("renders product 1's styles reading photos[0].url unguarded, writes with a preflight, and reads the exposed headers and problem bodies", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${storeOrigin}/products/1`);
    const seen = await page.evaluate(async (base) => {
      // As the storefront's product page does: no guard on photos[0] or the first sku.
      const styles = await fetch(`${base}/products/1/styles`);
      type Style = { name: string; photos: { url: string | null }[]; skus: Record<string, { size: string | null }> };
      const body = (await styles.json()) as { results: Style[] };
      const rendered = body.results
        .map((s) => `${s.name}: ${s.photos[0]!.url ?? "no photo"} / ${Object.values(s.skus)[0]!.size ?? "no size"}`)
        .join("\n");
      const write = await fetch(`${base}/registrations`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Idempotency-Key": `browser-${Date.now()}` },
        body: JSON.stringify({ email: `browser-${Date.now()}@example.com`, name: "Ada" }),
      });
      const invalid = await fetch(`${base}/registrations`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ email: "not an email" }),
      });
      return {
        stylesStatus: styles.status,
        xCache: styles.headers.get("X-Cache"),
        etag: styles.headers.get("ETag"),
        rendered,
        writeStatus: write.status,
        location: write.headers.get("Location"),
        requestId: write.headers.get("X-Request-Id"),
        invalidStatus: invalid.status,
        invalidType: invalid.headers.get("Content-Type"),
        invalidErrors: ((await invalid.json()) as { errors?: unknown[] }).errors?.length ?? 0,
      };
    }, api.url);
    expect(seen).toMatchObject({
      stylesStatus: 200,
      xCache: expect.stringMatching(/^(MISS|HIT)$/),
      etag: expect.stringMatching(/^"/),
      writeStatus: 202,
      location: expect.stringMatching(/^\/jobs\//),
      requestId: expect.any(String),
      invalidStatus: 400,
      invalidType: expect.stringMatching(/^application\/problem\+json/),
    });
    expect(seen.invalidErrors).toBeGreaterThan(0);
    expect(seen.rendered).toContain("Forest Green & Black: https://img.example/1.jpg / XS");
    expect(seen.rendered).toContain("Ocean Blue: no photo / no size");
    // The JSON write with an Idempotency-Key is not a simple request: the browser asked
    // first (the browser's own network service sends preflights; the API counted them).
    const metrics = (await request(api.url, "GET", "/metrics")).text;
    expect(metrics).toMatch(/http_request_duration_seconds_count\{[^}]*method="OPTIONS"[^}]*status="204"[^}]*\} [1-9]/);
    await context.close();
  });

  it("a page on an origin not listed cannot read the API's answers", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    // localhost and 127.0.0.1 are different origins to a browser.
    await page.goto(storeOrigin.replace("127.0.0.1", "localhost"));
    const outcome = await page.evaluate(async (base) => {
      try {
        await fetch(`${base}/products/1`);
        return "read";
      } catch (err) {
        return (err as Error).name;
      }
    }, api.url);
    expect(outcome).toBe("TypeError");
    await context.close();
  });
});
