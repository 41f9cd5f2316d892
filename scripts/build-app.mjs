// Bundles the entries of one workspace (run from its folder: an app, or packages/db for
// its migrate command) into dist/ with esbuild. Workspace packages (@ingest/*) export
// TypeScript source and are bundled in; everything from npm stays an import of
// node_modules, so native and worker-thread packages (pino) keep working.
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const cwd = process.cwd();
const pkg = JSON.parse(readFileSync(join(cwd, "package.json"), "utf8"));
const entries = pkg.entries ?? ["src/index.ts"];

const externalNpm = {
  name: "external-npm",
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith("@ingest/")) return undefined;
      return { path: args.path, external: true };
    });
  },
};

// Outputs are overwritten in place (no clean first): a test run building at the same time
// as another process runs dist/ must never find it missing.
await build({
  entryPoints: entries.map((e) => join(cwd, e)),
  outdir: join(cwd, "dist"),
  outbase: join(cwd, "src"),
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  sourcemap: true,
  logLevel: "warning",
  plugins: [externalNpm],
});
console.log(`built ${pkg.name}: ${entries.join(", ")}`);
