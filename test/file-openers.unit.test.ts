// Every source file opens with one `//` line saying what it is, so a reader knows a file before reading it.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..");

/** The files under `dir` (relative to the root) whose names end with one of `endings`, tests left out. */
function sourcesUnder(dir: string, endings: string[], recursive: boolean): string[] {
  const base = join(ROOT, dir);
  return readdirSync(base, { recursive, withFileTypes: true })
    .filter((e) => e.isFile() && endings.some((end) => e.name.endsWith(end)) && !e.name.endsWith(".test.ts"))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

const workspaceSources = (kind: "apps" | "packages") =>
  readdirSync(join(ROOT, kind), { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .flatMap((e) => {
      try {
        return sourcesUnder(join(kind, e.name, "src"), [".ts"], true);
      } catch {
        return []; // a workspace without src/
      }
    });

const SOURCES = [
  ...workspaceSources("apps"),
  ...workspaceSources("packages"),
  ...sourcesUnder("scripts", [".mjs", ".mts"], false),
  ...sourcesUnder("test/support", [".ts"], false),
].sort();

/** A `//` comment with words after it, on the very first line. */
const opensWithLine = (text: string) => /^\/\/ \S/.test(text);

describe("file openers", () => {
  it("finds the sources of every app and package", () => {
    expect(SOURCES).toContain("apps/api/src/app.ts");
    expect(SOURCES).toContain("apps/worker/src/writes-processor.ts");
    expect(SOURCES).toContain("packages/db/src/schema/products.ts");
    expect(SOURCES).toContain("scripts/run.mjs");
    expect(SOURCES).toContain("test/support/harness.ts");
  });

  it("tells a file opening with a comment line from one opening with an import or a JSDoc block", () => {
    expect(opensWithLine("// The write lanes' processor.\nimport x from 'y';\n")).toBe(true);
    expect(opensWithLine('import x from "y";\n// what it is\n')).toBe(false);
    expect(opensWithLine("/**\n * What it is.\n */\n")).toBe(false);
    expect(opensWithLine("//\n")).toBe(false);
  });

  it("every source file under apps/*/src, packages/*/src, scripts and test/support opens with a // line", () => {
    const without = SOURCES.filter((file) => !opensWithLine(readFileSync(join(ROOT, file), "utf8")));
    expect(without, "files whose first line is not a // comment saying what the file is").toEqual([]);
  });
});
