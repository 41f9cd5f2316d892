// GET /docs: Swagger UI over /openapi.json, served from swagger-ui-dist.
import { createRequire } from "node:module";
import { dirname } from "node:path";
import express, { Router } from "express";
import { methodNotAllowed } from "../middleware/method-not-allowed.js";
import { openApiDocument } from "../openapi.js";

const require = createRequire(import.meta.url);
const SWAGGER_UI = dirname(require.resolve("swagger-ui-dist/package.json"));

// No inline script, so the page works under a strict Content-Security-Policy.
const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ingest API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>`;
const INIT = `window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });`;

export function docsRoutes(): Router {
  const router = Router();
  const doc = JSON.stringify(openApiDocument());
  const getOnly = methodNotAllowed(["GET", "HEAD"]);
  router
    .route("/openapi.json")
    .get((_req, res) => {
      res.type("application/json").set("Cache-Control", "public, max-age=300").send(doc);
    })
    .all(getOnly);
  router
    .route("/docs")
    .get((_req, res) => {
      res.type("html").send(PAGE);
    })
    .all(getOnly);
  router
    .route("/docs/init.js")
    .get((_req, res) => {
      res.type("application/javascript").send(INIT);
    })
    .all(getOnly);
  router.use("/docs/assets", express.static(SWAGGER_UI, { index: false, maxAge: "1d" }));
  return router;
}
