// Installs the dependencies when the lockfile or a manifest changed, then builds the
// apps: what every root npm script does first. Plain Node, no dependencies: it runs
// before `npm install`.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const NPM = process.platform === "win32" ? "npm.cmd" : "npm";

/** The root manifest, the lockfile and every workspace's package.json (apps/*, packages/*). */
function manifests(root) {
  const workspaces = ["apps", "packages"]
    .filter((dir) => existsSync(join(root, dir)))
    .flatMap((dir) => readdirSync(join(root, dir)).sort().map((name) => join(dir, name, "package.json")))
    .filter((file) => existsSync(join(root, file)));
  return ["package.json", "package-lock.json", ...workspaces];
}

/** A step that failed, with the one line that says what to do. */
export class PrepareError extends Error {}

function step(what, cmd, args, opts) {
  const res = spawnSync(cmd, args, { stdio: "inherit", ...opts });
  if (res.error) throw new PrepareError(`${what} could not run ${cmd}: ${res.error.message}`);
  if (res.status !== 0) throw new PrepareError(`${what} failed (exit ${res.status ?? res.signal}); the output above says why`);
}

/**
 * The stamp (node_modules/.ingest-lock-hash) is written only after an install and a
 * build that both succeeded, so a failed or partial one is retried by the next command
 * instead of being taken for done.
 */
export function prepare({ root, env = process.env, log = console.log }) {
  const stamp = join(root, "node_modules", ".ingest-lock-hash");
  const turbo = join(root, "node_modules", ".bin", process.platform === "win32" ? "turbo.cmd" : "turbo");
  const hash = createHash("sha256").update(Buffer.concat(manifests(root).map((f) => readFileSync(join(root, f))))).digest("hex");
  const current = existsSync(stamp) && readFileSync(stamp, "utf8") === hash && existsSync(turbo);
  if (!current) {
    rmSync(stamp, { force: true });
    log("> installing dependencies from package-lock.json");
    // The build needs the dev dependencies (TypeScript, esbuild, turbo), which npm leaves
    // out under NODE_ENV=production unless asked. `npm ci` would reject lockfiles written
    // without other platforms' optional packages (npm/cli#4828); `npm install` honours
    // the lock and fills them in.
    step("npm install", NPM, ["install", "--no-audit", "--no-fund", "--include=dev"], { cwd: root, env });
    if (!existsSync(turbo)) throw new PrepareError(`npm install left no ${turbo}: the dev dependencies are missing; run \`npm install --include=dev\``);
  }
  step("building the apps", turbo, ["run", "build", "--output-logs=errors-only"], {
    cwd: root,
    env: { ...env, TURBO_TELEMETRY_DISABLED: "1", TURBO_NO_UPDATE_NOTIFIER: "1" },
  });
  if (!current) writeFileSync(stamp, hash);
}
