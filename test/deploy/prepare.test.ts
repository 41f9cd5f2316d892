import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prepare, PrepareError } from "../../scripts/prepare.mjs";

/**
 * A project shaped like this one for the install step: the build tool (`turbo`) is a dev
 * dependency, here a local package whose bin records that it ran and fails on demand.
 * npm installs it from the folder, offline.
 */
function scratchProject(): string {
  const root = mkdtempSync(join(tmpdir(), "prepare-"));
  const tool = join(root, "tools", "turbo");
  mkdirSync(tool, { recursive: true });
  writeFileSync(join(tool, "package.json"), JSON.stringify({ name: "turbo", version: "1.0.0", bin: { turbo: "bin.js" } }));
  writeFileSync(
    join(tool, "bin.js"),
    '#!/usr/bin/env node\nconst fs = require("node:fs");\nif (fs.existsSync("break-build")) { console.error("build broken"); process.exit(2); }\nfs.appendFileSync("built", "x");\n',
  );
  chmodSync(join(tool, "bin.js"), 0o755);
  writeFileSync(join(root, "package.json"), JSON.stringify({ name: "scratch", version: "1.0.0", private: true, devDependencies: { turbo: "file:tools/turbo" } }));
  for (const app of ["api", "worker"]) {
    mkdirSync(join(root, "apps", app), { recursive: true });
    writeFileSync(join(root, "apps", app, "package.json"), JSON.stringify({ name: app, version: "1.0.0" }));
  }
  const lock = spawnSync("npm", ["install", "--no-audit", "--no-fund", "--package-lock-only"], { cwd: root, encoding: "utf8" });
  if (lock.status !== 0) throw new Error(`npm could not write the scratch lockfile: ${lock.stderr}`);
  return root;
}

describe("install and build before every command (scripts/prepare.mjs)", () => {
  let root = "";
  const stamp = () => join(root, "node_modules", ".ingest-lock-hash");
  const builds = () => (existsSync(join(root, "built")) ? readFileSync(join(root, "built"), "utf8").length : 0);
  const quiet = { log: () => {} };

  beforeAll(() => {
    root = scratchProject();
  }, 60_000);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("under NODE_ENV=production it still installs the dev dependencies the build needs", () => {
    prepare({ root, env: { ...process.env, NODE_ENV: "production" }, ...quiet });
    expect(existsSync(join(root, "node_modules", ".bin", "turbo"))).toBe(true);
    expect(builds()).toBe(1);
    expect(existsSync(stamp())).toBe(true);
  }, 60_000);

  it("a failed build says so, leaves no stamp, and the next command installs and builds again", () => {
    rmSync(stamp());
    writeFileSync(join(root, "break-build"), "");
    expect(() => prepare({ root, ...quiet })).toThrow(PrepareError);
    expect(() => prepare({ root, ...quiet })).toThrow(/building the apps failed \(exit 2\)/);
    expect(existsSync(stamp())).toBe(false);
    rmSync(join(root, "break-build"));
    prepare({ root, ...quiet });
    expect(existsSync(stamp())).toBe(true);
  }, 60_000);

  it("a stamp whose install lost its dev dependencies does not wedge: it installs again", () => {
    rmSync(join(root, "node_modules", ".bin", "turbo"));
    rmSync(join(root, "node_modules", "turbo"), { recursive: true, force: true });
    const lines: string[] = [];
    prepare({ root, log: (l) => lines.push(l) });
    expect(lines).toContain("> installing dependencies from package-lock.json");
    expect(existsSync(join(root, "node_modules", ".bin", "turbo"))).toBe(true);
  }, 60_000);
});
