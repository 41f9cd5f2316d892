// The catalog read routes (products, a product's styles and related), served cache first.
import type { Resource } from "@ingest/catalog";
import { Router, type Request, type Response } from "express";
import type { CatalogReads } from "../cache/catalog-reads.js";
import { matchesIfNoneMatch } from "../cache/entry.js";
import { CatalogUnavailableError } from "../cache/read-through.js";
import { AppError } from "../errors.js";
import { methodNotAllowed } from "../middleware/method-not-allowed.js";
import { parseProductId } from "./writes.js";

// Clients and shared caches must ask again every time: after a write's job completed,
// the next read has to show it, which no max-age > 0 could promise. The strong ETag
// makes asking cheap (304, no body); the server-side cache absorbs the load.
const CACHE_CONTROL = "public, max-age=0, must-revalidate";

const MAX_COUNT = 100;
const MAX_PAGE = 10_000_000;

function positiveInt(raw: unknown, name: string, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = typeof raw === "string" && /^[1-9][0-9]{0,7}$/.test(raw) ? Number(raw) : NaN;
  if (!(n <= max)) {
    throw new AppError("validation", `${name} must be a whole number from 1 to ${max}.`, {
      errors: [{ path: `query/${name}`, message: `must be an integer from 1 to ${max}` }],
    });
  }
  return n;
}

async function serve(req: Request, res: Response, reads: CatalogReads, r: Resource): Promise<void> {
  let served;
  try {
    served = await reads.read(r);
  } catch (err) {
    if (!(err instanceof CatalogUnavailableError)) throw err;
    throw new AppError("unavailable", "The catalog cannot be read right now; retry shortly.", { retryAfterS: 2 });
  }
  const { entry, how } = served;
  res.set({ "X-Cache": how, "Cache-Control": CACHE_CONTROL });
  if (entry.status === 404) {
    throw new AppError("not_found", `No product with id ${"id" in r ? r.id : "?"}.`);
  }
  res.set("ETag", entry.etag);
  if (matchesIfNoneMatch(req.get("if-none-match"), entry.etag)) {
    res.status(304).end();
    return;
  }
  res.status(200).type("application/json; charset=utf-8").send(entry.body);
}

/** The catalog as the storefront reads it, cache first. */
export function readRoutes(reads: CatalogReads): Router {
  const router = Router();
  const id = (req: Request) => parseProductId(String(req.params.id));

  router.get("/products", (req, res) =>
    serve(req, res, reads, {
      kind: "list",
      page: positiveInt(req.query.page, "page", 1, MAX_PAGE),
      count: positiveInt(req.query.count, "count", 5, MAX_COUNT),
    }),
  );
  router.get("/products/:id", (req, res) => serve(req, res, reads, { kind: "product", id: id(req) }));
  router
    .route("/products/:id/styles")
    .get((req, res) => serve(req, res, reads, { kind: "styles", id: id(req) }))
    .all(methodNotAllowed(["GET", "HEAD"]));
  router
    .route("/products/:id/related")
    .get((req, res) => serve(req, res, reads, { kind: "related", id: id(req) }))
    .all(methodNotAllowed(["GET", "HEAD"]));
  return router;
}
