// Baseline: Express 5 doing nothing but what every request costs. POST parses JSON and
// answers 202 (the ingest floor); GET answers a constant product-shaped body (the read floor).
import express from "express";

const PRODUCT = {
  id: 1, name: "Camo Onesie", slogan: "Blend in to your crowd",
  description: "The So Fatigues will wake you up and fit you in. This high energy camo will have you blending in to even the wildest surroundings.",
  category: "Jackets", default_price: "140.00",
  features: [{ feature: "Fabric", value: "Canvas" }, { feature: "Buttons", value: "Brass" }],
};

const app = express();
app.use(express.json({ limit: "100kb" }));
app.post("/registrations", (_req, res) => {
  res.status(202).location("/jobs/reg-0").json({ jobId: "reg-0", status: "queued", statusUrl: "/jobs/reg-0" });
});
app.get("/products/:id", (_req, res) => {
  res.json(PRODUCT);
});
app.get("/healthz", (_req, res) => {
  res.json({ ok: true });
});

const server = app.listen(Number(process.env.PORT), process.env.HOST ?? "127.0.0.1");
process.on("SIGTERM", () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
