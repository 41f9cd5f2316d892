// A rule of the layout that no tool checks: packages' tests stand without the apps' sources.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..");
const IMPORT = /(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g;

/** Every repository file a module loads through relative imports, itself included. */
function relativeClosure(file: string, seen = new Set<string>()): Set<string> {
  if (seen.has(file)) return seen;
  seen.add(file);
  for (const [, spec] of readFileSync(file, "utf8").matchAll(IMPORT)) {
    const target = resolve(dirname(file), spec!);
    const candidates = [target, target.replace(/\.js$/, ".ts"), target.replace(/\.mjs$/, ".mts"), `${target}.ts`, join(target, "index.ts")];
    const found = candidates.find((c) => existsSync(c) && !c.endsWith("/"));
    if (found && /\.(m?ts|m?js)$/.test(found)) relativeClosure(found, seen);
  }
  return seen;
}

const testsOf = (dir: string) =>
  existsSync(dir) ? readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".test.ts")).map((f) => join(dir, f)) : [];

describe("layout", () => {
  const packages = readdirSync(join(ROOT, "packages")).flatMap((p) => testsOf(join(ROOT, "packages", p, "test")));

  it("finds the packages' tests and follows their imports", () => {
    expect(packages.length).toBeGreaterThan(3);
    const harness = relativeClosure(join(ROOT, "test/support/harness.ts"));
    expect([...harness].some((f) => relative(ROOT, f).startsWith("apps/"))).toBe(true);
  });

  it("no package's test loads an app's sources", () => {
    const offenders = packages.flatMap((t) =>
      [...relativeClosure(t)].filter((f) => relative(ROOT, f).startsWith("apps/")).map((f) => `${relative(ROOT, t)} -> ${relative(ROOT, f)}`),
    );
    expect(offenders).toEqual([]);
  });
});
