// `npm run migrate`, the start-up migration of `npm start` and the compose/k8s migrate job:
// applies migrations/ to DATABASE_URL, creating the database when it is missing.
import { fileURLToPath } from "node:url";
import { DEFAULT_DATABASE_URL, parseEnv, str, url } from "@ingest/config";
import { migrateDatabase } from "./migrator.js";

// The folder sits at the repository root, three levels above this file once built
// into packages/db/dist/.
const env = parseEnv({
  DATABASE_URL: url(["postgres:", "postgresql:"], DEFAULT_DATABASE_URL),
  MIGRATIONS_DIR: str(fileURLToPath(new URL("../../../migrations", import.meta.url))),
});

try {
  await migrateDatabase(env.DATABASE_URL, env.MIGRATIONS_DIR, (msg) => console.log(msg));
  console.log("migrations applied");
} catch (err) {
  console.error(`migration failed: ${(err as Error).message}`);
  process.exit(1);
}
