import { fileURLToPath } from "node:url";
import { DEFAULT_DATABASE_URL, parseEnv, str, url } from "@ingest/config";
import { migrateDatabase } from "@ingest/db";

// Run as a one-shot (`npm run migrate`, the compose migrate service). The folder sits
// at the repository root, three levels above this file once built into dist/.
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
