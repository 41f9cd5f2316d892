// The `npm run seed` command: writes a seeded catalog in the CSV export format.
import { resolve } from "node:path";
import { parseCli, usageFailure } from "./args.js";
import { generateCatalog } from "../seed/generate-catalog.js";
import { formatBytes, formatCount } from "../import/format.js";

// `npm run seed -- --products N [--out DIR] [--crlf] [--faults RATE] [--seed S]`
const USAGE = `usage: seed [--products N] [--out DIR] [--crlf] [--faults RATE] [--seed S]
  --products N   products to generate (default 1000); ≈42 rows per product in all
  --out DIR      output folder (default ./data/seed)
  --crlf         Windows line endings
  --faults RATE  share of rows written deliberately bad, e.g. 0.001 (default 0)
  --seed S       PRNG seed (default fixed): same options, byte-identical files`;

const fail = (message: string): never => usageFailure(USAGE, message);

const args = parseCli(USAGE, {
  options: {
    products: { type: "string", default: "1000" },
    out: { type: "string", default: "data/seed" },
    crlf: { type: "boolean", default: false },
    faults: { type: "string", default: "0" },
    seed: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
const products = Number(args.values.products);
if (!Number.isInteger(products) || products < 1 || products > 50_000_000) fail("--products must be a whole number from 1 to 50000000");
const faults = Number(args.values.faults);
if (!Number.isFinite(faults) || faults < 0 || faults > 1) fail("--faults must be a number from 0 to 1");
const seed = args.values.seed === undefined ? undefined : Number(args.values.seed);
if (seed !== undefined && !Number.isInteger(seed)) fail("--seed must be a whole number");
const out = resolve(args.values.out);

const tty = process.stderr.isTTY;
let lastReport = 0;
const summary = await generateCatalog({
  products,
  out,
  crlf: args.values.crlf,
  faults,
  ...(seed === undefined ? {} : { seed }),
  onProgress: (done) => {
    const now = Date.now();
    if (now - lastReport < (tty ? 250 : 5_000) && done < products) return;
    lastReport = now;
    const line = `seed: ${formatCount(done)} / ${formatCount(products)} products`;
    if (tty) process.stderr.write(`\r${line}`);
    else console.error(line);
  },
});
if (tty) process.stderr.write("\n");

for (const f of summary.files) {
  const faultNote = f.faults ? `, ${formatCount(f.faults)} deliberately bad (first lines ${f.faultLines.join(", ")})` : "";
  console.log(`  ${f.file.padEnd(13)} ${formatCount(f.rows).padStart(12)} rows ${formatBytes(f.bytes).padStart(10)}${faultNote}`);
}
const seconds = summary.ms / 1000;
console.log(
  `seed: wrote ${formatCount(summary.rows)} rows (${formatBytes(summary.bytes)}) for ${formatCount(products)} products to ${out} in ${seconds.toFixed(1)} s` +
    ` (${formatCount(Math.round(summary.rows / seconds))} rows/s)`,
);
