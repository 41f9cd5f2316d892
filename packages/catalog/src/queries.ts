// The SQL of each catalog read: one statement that builds the whole answer as JSON in PostgreSQL.
import type { Db } from "@ingest/db";
import { sql, type SQL } from "drizzle-orm";
import type { Resource } from "./keys.js";

// Each read is one statement that builds the whole answer as JSON inside PostgreSQL and
// returns it as text: no N+1, no parse and re-serialise in Node, and the text is what
// the ETag hashes. Child rows are reached through their product_id / style_id indexes.
// Prices are numeric(12,2), so ::text gives "140.00"; a missing sale price stays null.
// A style without photos or skus answers what the original Product API answered, a
// placeholder with nulls: storefront clients read photos[0].url and the skus' first
// entry without a guard, and an empty list or object blanks their product page.
const NO_PHOTOS = `[{"thumbnail_url":null,"url":null}]`;
const NO_SKUS = `{"null":{"quantity":null,"size":null}}`;

const PRODUCT = (id: number) => sql`
  select json_build_object(
    'id', p.id, 'name', p.name, 'slogan', p.slogan, 'description', p.description,
    'category', p.category, 'default_price', p.default_price::text,
    'features', coalesce(
      (select json_agg(json_build_object('feature', f.feature, 'value', f.value) order by f.id)
         from features f where f.product_id = p.id),
      '[]'::json)
  )::text as body
  from products p where p.id = ${id}`;

const STYLES = (id: number) => sql`
  select json_build_object(
    'product_id', p.id::text,
    'results', coalesce(
      (select json_agg(json_build_object(
          'style_id', s.id, 'name', s.name,
          'original_price', s.original_price::text, 'sale_price', s.sale_price::text,
          'default?', s.default_style,
          'photos', coalesce(
            (select json_agg(json_build_object('thumbnail_url', ph.thumbnail_url, 'url', ph.url) order by ph.id)
               from photos ph where ph.style_id = s.id),
            ${NO_PHOTOS}::json),
          'skus', coalesce(
            (select json_object_agg(k.id::text, json_build_object('quantity', k.quantity, 'size', k.size) order by k.id)
               from skus k where k.style_id = s.id),
            ${NO_SKUS}::json)
        ) order by s.id)
        from styles s where s.product_id = p.id),
      '[]'::json)
  )::text as body
  from products p where p.id = ${id}`;

const RELATED = (id: number) => sql`
  select coalesce(
    (select json_agg(r.related_product_id order by r.id) from related r where r.product_id = p.id),
    '[]'::json)::text as body
  from products p where p.id = ${id}`;

// Offset paging is the contract (page, count). The offset is skipped on the primary key
// index alone (an index-only scan), then just the page's rows are fetched: a deep page
// costs a fraction of OFFSET over whole rows. Past the end the bound is null: no rows.
const LIST = (page: number, count: number) => sql`
  select coalesce(json_agg(json_build_object(
      'id', p.id, 'name', p.name, 'slogan', p.slogan, 'description', p.description,
      'category', p.category, 'default_price', p.default_price::text
    ) order by p.id), '[]'::json)::text as body
  from (
    select * from products
    where id >= (select id from products order by id offset ${(page - 1) * count} limit 1)
    order by id limit ${count}
  ) p`;

function catalogStatement(r: Resource): SQL {
  switch (r.kind) {
    case "product":
      return PRODUCT(r.id);
    case "styles":
      return STYLES(r.id);
    case "related":
      return RELATED(r.id);
    case "list":
      return LIST(r.page, r.count);
  }
}

type CatalogQueries = {
  /** The JSON text of the answer, or undefined when the product does not exist. */
  read(r: Resource): Promise<string | undefined>;
  /** Statements sent to PostgreSQL so far (tests count them; metrics may export them). */
  readonly count: number;
};

export function createCatalogQueries(db: Db): CatalogQueries {
  let count = 0;
  return {
    async read(r) {
      count++;
      const { rows } = await db.execute<{ body: string }>(catalogStatement(r));
      return rows[0]?.body;
    },
    get count() {
      return count;
    },
  };
}
