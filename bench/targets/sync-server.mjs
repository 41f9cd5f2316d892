// Baseline: the synchronous design. Express 5 with one INSERT per request through a pg
// Pool of the API's default size, answering only once PostgreSQL has the row.
import express from "express";
import pg from "pg";

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DB_POOL_SIZE ?? 10) });
const app = express();
app.use(express.json({ limit: "100kb" }));
app.post("/registrations", async (req, res) => {
  const { email, name } = req.body ?? {};
  if (typeof email !== "string" || typeof name !== "string") return void res.status(400).json({ title: "bad request" });
  const { rows } = await pool.query(
    "insert into bench_sync_registrations (email, name) values ($1, $2) on conflict ((lower(email))) do nothing returning id",
    [email, name],
  );
  res.status(201).json({ registrationId: rows[0]?.id ?? null });
});
app.get("/healthz", (_req, res) => {
  res.json({ ok: true });
});

const server = app.listen(Number(process.env.PORT), process.env.HOST ?? "127.0.0.1");
process.on("SIGTERM", () => {
  server.closeAllConnections();
  server.close(() => pool.end().then(() => process.exit(0)));
});
