// Writes a deterministic seeded catalog as the six CSV export files, optionally with bad rows.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { CsvSink } from "./csv-sink.js";
import { Prng } from "./prng.js";
import {
  ADJECTIVES,
  CATEGORIES,
  CLOTHING_SIZES,
  FEATURES,
  NAME_SUFFIXES,
  NOUNS,
  quote,
  SENTENCES,
  SHOE_SIZES,
  SLOGANS,
  STYLE_NAMES,
} from "./vocabulary.js";

type SeedOptions = {
  products: number;
  out: string;
  /** Windows line endings between rows (fields may still hold a bare \n). */
  crlf?: boolean;
  /** Share of rows written deliberately bad (0 = none); see FAULTS below. */
  faults?: number;
  seed?: number;
  onProgress?: (productsDone: number) => void;
};

export type SeedFile = { file: string; rows: number; bytes: number; faults: number; faultLines: number[] };
export type SeedSummary = { files: SeedFile[]; rows: number; bytes: number; ms: number };

const HEADERS = {
  products: "id,name,slogan,description,category,default_price",
  features: "id,product_id,feature,value",
  styles: "id,productId,name,sale_price,original_price,default_style",
  photos: "id,styleId,url,thumbnail_url",
  skus: "id,styleId,size,quantity",
  related: "id,current_product_id,related_product_id",
} as const;
type Table = keyof typeof HEADERS;
const FILES: Record<Table, string> = {
  products: "product.csv",
  features: "features.csv",
  styles: "styles.csv",
  photos: "photos.csv",
  skus: "skus.csv",
  related: "related.csv",
};

// A style id no generated style has: photos pointing at it have a missing parent.
const MISSING_STYLE_ID = 2_000_000_000;
const BATCH = 512;

// Escaped once (inner quotes doubled) so rows are plain concatenations.
const esc = (s: string) => s.replaceAll('"', '""');
const Q_SENTENCES = SENTENCES.map(esc);
const Q_SLOGANS = SLOGANS.map(quote);
const Q_CATEGORIES = CATEGORIES.map(quote);
const Q_STYLE_NAMES = STYLE_NAMES.map(quote);
const Q_FEATURES = FEATURES.map(([name, values]) => [quote(name), values.map((v) => (v === "null" ? v : quote(v)))] as const);
const Q_CLOTHING = CLOTHING_SIZES.map(quote);
const Q_SHOES = SHOE_SIZES.map(quote);

function photoPool(prng: Prng): string[] {
  const pool: string[] = [];
  for (let i = 0; i < 2048; i++) {
    const stamp = 1_400_000_000_000 + prng.int(0, 200_000_000_000);
    const hash = prng.int(0, 0xffffff).toString(16).padStart(6, "0") + prng.int(0, 0xffffff).toString(16).padStart(6, "0");
    const base = `https://images.unsplash.com/photo-${stamp}-${hash}?ixlib=rb-1.2.1&auto=format&fit=crop`;
    pool.push(`"${base}&w=668&q=80","${base}&w=300&q=80"`);
  }
  return pool;
}

function price(prng: Prng): string {
  const whole = prng.int(5, 999);
  return prng.chance(0.1) ? `${whole}.${prng.int(0, 99).toString().padStart(2, "0")}` : String(whole);
}

/**
 * Writes a catalog in the seed Product API's CSV export format. Deterministic: the
 * same options give byte-identical files. Fan-out per product: ≈2 features,
 * ≈3.5 styles, ≈3 photos and 6 skus per style, ≈4 related.
 */
export async function generateCatalog(opts: SeedOptions): Promise<SeedSummary> {
  const started = performance.now();
  const eol = opts.crlf ? "\r\n" : "\n";
  const faultRate = opts.faults ?? 0;
  const n = opts.products;
  const prng = new Prng(opts.seed ?? 20_240_601);
  const photos = photoPool(prng);
  await mkdir(opts.out, { recursive: true });
  const sinks = Object.fromEntries(
    (Object.keys(HEADERS) as Table[]).map((t) => [t, new CsvSink(join(opts.out, FILES[t]), HEADERS[t], eol)]),
  ) as Record<Table, CsvSink>;
  const faults = Object.fromEntries((Object.keys(HEADERS) as Table[]).map((t) => [t, [] as number[]])) as Record<Table, number[]>;
  // Deliberately bad rows, one kind per file, each skipped and reported by the importer.
  const fault = (t: Table) => {
    if (faultRate <= 0 || !prng.chance(faultRate)) return false;
    faults[t].push(sinks[t].nextLine);
    return true;
  };
  const ids = { feature: 0, style: 0, photo: 0, sku: 0, related: 0 };

  for (let id = 1; id <= n; id++) {
    const name = `${prng.pick(ADJECTIVES)} ${prng.pick(NOUNS)}${prng.pick(NAME_SUFFIXES)}`;
    const sentences = prng.int(1, 3);
    const multiline = prng.chance(0.002);
    let description = "";
    for (let s = 0; s < sentences; s++) description += (s ? (multiline ? "\n" : " ") : "") + prng.pick(Q_SENTENCES);
    const defaultPrice = price(prng);
    const category = prng.pick(Q_CATEGORIES);
    const slogan = prng.pick(Q_SLOGANS);
    if (fault("products")) {
      // A European decimal: a bad number. The product's children are left out with it.
      sinks.products.row(`${id},"${esc(name)}",${slogan},"${description}",${category},"${prng.int(1, 99)},50"`, multiline ? sentences - 1 : 0);
      continue;
    }
    sinks.products.row(`${id},"${esc(name)}",${slogan},"${description}",${category},${defaultPrice}`, multiline ? sentences - 1 : 0);

    const featureCount = prng.int(1, 3);
    for (let f = 0; f < featureCount; f++) {
      const [feature, values] = prng.pick(Q_FEATURES);
      const value = prng.pick(values);
      const quirky = value === "null" && prng.chance(0.3) ? '"null"' : value;
      ids.feature++;
      // Wrong field count: a stray trailing field.
      sinks.features.row(`${ids.feature},${id},${feature},${quirky}${fault("features") ? ",extra" : ""}`);
    }

    const styleCount = prng.int(3, 4);
    const booleans = prng.chance(0.2);
    const shoes = prng.chance(0.3);
    for (let s = 0; s < styleCount; s++) {
      ids.style++;
      const styleId = ids.style;
      const original = prng.chance(0.7) ? defaultPrice : price(prng);
      const sale = prng.chance(0.3) ? String(Math.max(1, Math.floor(Number(original) * 0.8))) : "null";
      const isDefault = s === 0;
      const flag = booleans ? String(isDefault) : isDefault ? "1" : "0";
      if (fault("styles")) {
        sinks.styles.row(`${styleId},${id},${prng.pick(Q_STYLE_NAMES)},${sale},N/A,${flag}`);
        continue;
      }
      sinks.styles.row(`${styleId},${id},${prng.pick(Q_STYLE_NAMES)},${sale},${original},${flag}`);

      const photoCount = prng.int(2, 4);
      for (let p = 0; p < photoCount; p++) {
        ids.photo++;
        const parent = fault("photos") ? MISSING_STYLE_ID : styleId;
        sinks.photos.row(`${ids.photo},${parent},${prng.pick(photos)}`);
      }
      const sizes = shoes ? Q_SHOES : Q_CLOTHING;
      const first = shoes ? prng.int(0, sizes.length - 6) : 0;
      for (let k = 0; k < 6; k++) {
        ids.sku++;
        const quantity = fault("skus") ? "ten" : String(prng.int(0, 60));
        sinks.skus.row(`${ids.sku},${styleId},${sizes[first + k]},${quantity}`);
      }
    }

    if (n > 1) {
      const relatedCount = prng.int(3, 5);
      for (let r = 0; r < relatedCount; r++) {
        let other = prng.int(1, n - 1);
        if (other >= id) other++;
        ids.related++;
        // Wrong field count: the related id is missing.
        sinks.related.row(fault("related") ? `${ids.related},${id}` : `${ids.related},${id},${other}`);
      }
    }

    if (id % BATCH === 0) {
      await Promise.all(Object.values(sinks).map((s) => s.drain()));
      opts.onProgress?.(id);
    }
  }
  await Promise.all(Object.values(sinks).map((s) => s.close()));
  opts.onProgress?.(n);

  const files = (Object.keys(HEADERS) as Table[]).map((t) => ({
    file: FILES[t],
    rows: sinks[t].rows,
    bytes: sinks[t].bytes,
    faults: faults[t].length,
    faultLines: faults[t].slice(0, 10),
  }));
  return {
    files,
    rows: files.reduce((sum, f) => sum + f.rows, 0),
    bytes: files.reduce((sum, f) => sum + f.bytes, 0),
    ms: performance.now() - started,
  };
}
