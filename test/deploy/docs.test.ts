// The documentation stays short and true: the README's size, every relative link and
// #anchor in README.md and docs/*.md, and docs/CONFIGURATION.md against the variables the
// environment schemas read.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");
const README_MAX_BYTES = 12_000;

const read = (path: string) => readFileSync(join(ROOT, path), "utf8");
const docPages = () => ["README.md", ...readdirSync(join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];

/** The lines of a markdown file outside fenced code blocks. */
function proseLines(markdown: string): string[] {
  const lines: string[] = [];
  let fence: string | undefined;
  for (const line of markdown.split("\n")) {
    const marker = /^\s*(```|~~~)/.exec(line)?.[1];
    if (marker && (fence === undefined || fence === marker)) {
      fence = fence === undefined ? marker : undefined;
      continue;
    }
    if (fence === undefined) lines.push(line);
  }
  return lines;
}

/** GitHub's anchor for a heading: inline markup dropped, lower case, punctuation removed, spaces to hyphens. */
function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/<[^>]+>/g, "")
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, "").replace(/\s/g, "-");
}

/** Every anchor a page offers, numbered as GitHub numbers repeated headings. */
function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const line of proseLines(markdown)) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const base = slug(heading);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** Inline links and images of a page, outside code: [text](target). */
function linksOf(markdown: string): string[] {
  const targets: string[] = [];
  for (const line of proseLines(markdown)) {
    const prose = line.replace(/`[^`]*`/g, "");
    for (const m of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) targets.push(m[1]!);
  }
  return targets;
}

/** Where a link goes wrong, or undefined when its file (and heading) exist. */
function brokenLink(page: string, target: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return undefined;
  const [path, anchor] = target.split("#", 2) as [string, string | undefined];
  const file = path === "" ? join(ROOT, page) : resolve(ROOT, dirname(page), decodeURIComponent(path));
  if (!file.startsWith(ROOT)) return `${target}: outside the repository`;
  if (!existsSync(file)) return `${target}: no such file`;
  if (anchor === undefined) return undefined;
  if (!file.endsWith(".md") || statSync(file).isDirectory()) return `${target}: an anchor into a file that is not markdown`;
  if (!anchorsOf(readFileSync(file, "utf8")).has(anchor)) return `${target}: no heading with that anchor in ${relative(ROOT, file)}`;
  return undefined;
}

describe("the documentation's shape", () => {
  it("README.md stays under 12 KB", () => {
    expect(statSync(join(ROOT, "README.md")).size).toBeLessThanOrEqual(README_MAX_BYTES);
  });

  it("makes GitHub's anchors", () => {
    expect(slug("Docker Compose: `--profile observability`")).toBe("docker-compose---profile-observability");
    expect(slug("Browsers (CORS)")).toBe("browsers-cors");
    expect(slug("API, worker and importer")).toBe("api-worker-and-importer");
    expect([...anchorsOf("# A\n```sh\n# not a heading\n```\n## A\n")]).toEqual(["a", "a-1"]);
  });

  it("finds links outside code, and tells a broken one", () => {
    expect(linksOf("see [x](docs/API.md#writes) and ![c](a.svg)\n`[no](code.md)`\n```\n[no](fence.md)\n```")).toEqual(["docs/API.md#writes", "a.svg"]);
    expect(brokenLink("README.md", "docs/API.md#writes")).toBeUndefined();
    expect(brokenLink("README.md", "docs/API.md#no-such-heading")).toMatch(/no heading/);
    expect(brokenLink("README.md", "docs/NOPE.md")).toMatch(/no such file/);
  });

  it.each(docPages())("every relative link and #anchor in %s resolves", (page) => {
    const broken = linksOf(read(page)).map((target) => brokenLink(page, target)).filter((b) => b !== undefined);
    expect(broken).toEqual([]);
  });
});

/** Source files under apps/*\/src and packages/*\/src. */
function sourceFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".ts")) out.push(path);
    }
  };
  for (const top of ["apps", "packages"]) {
    for (const name of readdirSync(join(ROOT, top))) if (existsSync(join(ROOT, top, name, "src"))) walk(`${top}/${name}/src`);
  }
  return out.sort();
}

/** The variable names of the spec object a source passes to parseEnv({...}), or undefined without one. */
function envKeysOf(source: string): string[] | undefined {
  const call = /\bparseEnv\(\s*\{/.exec(source);
  if (!call) return undefined;
  const open = call.index + call[0].length - 1;
  let depth = 0;
  let end = open;
  for (; end < source.length; end++) {
    if (source[end] === "{") depth++;
    else if (source[end] === "}" && --depth === 0) break;
  }
  const spec = source.slice(open + 1, end);
  return [...spec.matchAll(/^\s*([A-Z][A-Z0-9_]*)\s*:/gm)].map((m) => m[1]!);
}

/** Every environment schema in the code: file -> the variables it reads. */
function codeSchemas(): Map<string, string[]> {
  const schemas = new Map<string, string[]>();
  for (const file of sourceFiles()) {
    const keys = envKeysOf(readFileSync(join(ROOT, file), "utf8"));
    if (keys) schemas.set(file, keys);
  }
  return schemas;
}

/** docs/CONFIGURATION.md: file -> the variables its sections list (a section's "Read by" line names the files). */
function documentedSchemas(): { byFile: Map<string, string[]>; orphans: string[] } {
  const byFile = new Map<string, string[]>();
  const orphans: string[] = [];
  const sections = proseLines(read("docs/CONFIGURATION.md")).join("\n").split(/^#{1,6} .*$/m);
  for (const section of sections) {
    const readBy = /^Read by (.*)$/m.exec(section)?.[1];
    const files = readBy ? [...readBy.matchAll(/`([^`]+\.ts)`/g)].map((m) => m[1]!) : [];
    const names = section
      .split("\n")
      .filter((line) => line.startsWith("| `"))
      .flatMap((line) => [...line.split("|")[1]!.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1]!));
    if (files.length === 0) orphans.push(...names);
    for (const file of files) byFile.set(file, [...(byFile.get(file) ?? []), ...names]);
  }
  return { byFile, orphans };
}

const sorted = (names: Iterable<string>) => [...names].sort();

describe("docs/CONFIGURATION.md", () => {
  const code = codeSchemas();

  it("reads the schemas' keys from the source, as the schemas themselves have them", async () => {
    expect(envKeysOf('const env = parseEnv({\n  // a comment: {x}\n  DATABASE_URL: url(["postgres:"], D),\n  PORT: int(3000, { min: 0 }),\n}, source);')).toEqual(["DATABASE_URL", "PORT"]);
    expect(envKeysOf("export function parseEnv<S>(spec: S) {}")).toBeUndefined();
    expect(code.get("apps/api/src/env.ts")).toContain("CORS_ORIGINS");
    expect([...code.values()].flat()).toContain("DATABASE_URL");
    // Where a schema is exported behind a load…Env function, its parsed keys are the ones found in the source.
    let loaders = 0;
    for (const [file, keys] of code) {
      const source = readFileSync(join(ROOT, file), "utf8");
      for (const [, name] of source.matchAll(/^export function (load\w*Env)\(/gm)) {
        const mod = (await import(pathToFileURL(join(ROOT, file)).href)) as Record<string, (s: Record<string, string>) => object>;
        expect(sorted(Object.keys(mod[name!]!({}))), `${file}: ${name}`).toEqual(sorted(keys));
        loaders++;
      }
    }
    expect(loaders).toBeGreaterThan(0);
  });

  it("names every file with an environment schema, and no other", () => {
    expect(sorted(documentedSchemas().byFile.keys())).toEqual(sorted(code.keys()));
  });

  it("lists exactly the variables each schema reads, each once", () => {
    const { byFile, orphans } = documentedSchemas();
    expect(orphans, "variables in a section without a `Read by` line").toEqual([]);
    for (const [file, names] of byFile) {
      expect(names.filter((n, i) => names.indexOf(n) !== i), `${file}: listed twice`).toEqual([]);
      expect(sorted(names), file).toEqual(sorted(code.get(file) ?? []));
    }
  });
});
