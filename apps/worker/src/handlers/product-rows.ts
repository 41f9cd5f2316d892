import { features, products } from "@ingest/db";
import type { TProduct, TProductPatch } from "@ingest/jobs";
import { eq, sql } from "drizzle-orm";
import type { Tx } from "./types.js";

type Features = NonNullable<TProduct["features"]>;

export async function replaceFeatures(tx: Tx, productId: number, list: Features): Promise<void> {
  await tx.delete(features).where(eq(features.productId, productId));
  if (list.length === 0) return;
  await tx.insert(features).values(list.map((f) => ({ productId, feature: f.feature, value: f.value ?? null })));
}

export function productColumns(p: TProduct) {
  return {
    name: p.name,
    slogan: p.slogan ?? null,
    description: p.description ?? null,
    category: p.category,
    // Validation normalised prices to decimal strings.
    defaultPrice: String(p.default_price),
  };
}

export function patchColumns(p: TProductPatch) {
  const set: Partial<ReturnType<typeof productColumns>> = {};
  if (p.name !== undefined) set.name = p.name;
  if (p.slogan !== undefined) set.slogan = p.slogan;
  if (p.description !== undefined) set.description = p.description;
  if (p.category !== undefined) set.category = p.category;
  if (p.default_price !== undefined) set.defaultPrice = String(p.default_price);
  return set;
}

/** Explicit ids (PUT) may run ahead of the identity sequence; keep it ahead of them. */
export async function bumpProductSequence(tx: Tx, productId: number): Promise<void> {
  await tx.execute(sql`
    select setval(pg_get_serial_sequence('products', 'id'), ${productId})
    where ${productId} > (select last_value from products_id_seq)`);
}

export const touch = { updatedAt: sql`now()` };
export { products };
