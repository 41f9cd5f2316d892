// The product row helpers the product handlers share: columns, features, a free id.
import { features } from "@ingest/db";
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

/**
 * Inserts a product at the identity sequence's next id that no row holds, skipping
 * the ids PUTs took ahead of the sequence, in one statement however many in a row they
 * took. PUTs never move the sequence, so no client id can jump or exhaust it.
 * Answers undefined when the id drawn was taken by a PUT not committed yet: the
 * caller draws again.
 */
export async function insertAtFreeId(tx: Tx, columns: ReturnType<typeof productColumns>): Promise<number | undefined> {
  const { rows } = await tx.execute<{ id: number }>(sql`
    with recursive probe(id) as (
      select nextval('products_id_seq')
      union all
      select nextval('products_id_seq') from probe
      where exists (select 1 from products p where p.id = probe.id)
    )
    insert into products (id, name, slogan, description, category, default_price)
    select id, ${columns.name}::varchar, ${columns.slogan}::text, ${columns.description}::text,
      ${columns.category}::varchar, ${columns.defaultPrice}::numeric
    from probe
    where not exists (select 1 from products p where p.id = probe.id)
    on conflict (id) do nothing
    returning id`);
  return rows[0]?.id;
}

export const touch = { updatedAt: sql`now()` };
