// Seeds a small known catalog (products, styles, photos, skus, related) for the read tests.
import type { Db } from "@ingest/db";
import { sql } from "drizzle-orm";

// A small catalog written straight into the tables, as the importer would leave it:
// product 1 has everything (a feature without a value, styles with and without a sale
// price, photos, skus, related ids incl. one that is not a product); product 2 has
// nothing beside itself; products 3..12 fill list pages.
export async function seedCatalog(db: Db, base = 0): Promise<void> {
  const id = (n: number) => base + n;
  await db.execute(sql`
    insert into products (id, name, slogan, description, category, default_price) values
      (${id(1)}, 'Camo Onesie', 'Blend in to your crowd', 'The So Fatigues will wake you up and fit you in.', 'Jackets', 140),
      (${id(2)}, 'Bright Future Sunglasses', null, null, 'Accessories', 69.5)`);
  await db.execute(sql`
    insert into products (id, name, slogan, description, category, default_price)
    select ${base} + n, 'Product ' || n, 'Slogan ' || n, 'Description ' || n, 'Basics', n * 10
    from generate_series(3, 12) as n`);
  await db.execute(sql`
    insert into features (product_id, feature, value) values
      (${id(1)}, 'Fabric', 'Canvas'), (${id(1)}, 'Buttons', 'Brass'), (${id(1)}, 'Lining', null)`);
  await db.execute(sql`
    insert into styles (id, product_id, name, original_price, sale_price, default_style) values
      (${id(1)}, ${id(1)}, 'Forest Green & Black', 140, null, true),
      (${id(2)}, ${id(1)}, 'Desert Brown & Tan', 140, 100, false),
      (${id(3)}, ${id(1)}, 'Ocean Blue', 140, null, false)`);
  await db.execute(sql`
    insert into photos (id, style_id, url, thumbnail_url) values
      (${id(1)}, ${id(1)}, 'https://img.example/1.jpg', 'https://img.example/1-thumb.jpg'),
      (${id(2)}, ${id(1)}, 'https://img.example/2.jpg', 'https://img.example/2-thumb.jpg'),
      (${id(3)}, ${id(2)}, 'https://img.example/3.jpg', null)`);
  await db.execute(sql`
    insert into skus (id, style_id, size, quantity) values
      (${id(1)}, ${id(1)}, 'XS', 8), (${id(2)}, ${id(1)}, 'S', 16), (${id(3)}, ${id(1)}, 'M', 17),
      (${id(4)}, ${id(2)}, 'XL', 0)`);
  await db.execute(sql`
    insert into related (product_id, related_product_id) values
      (${id(1)}, ${id(2)}), (${id(1)}, ${id(3)}), (${id(1)}, ${id(8)}), (${id(1)}, 999999)`);
  // Explicit ids above; later inserts without one must not collide with them.
  for (const table of ["products", "styles", "photos", "skus", "features", "related"]) {
    await db.execute(sql.raw(`select setval(pg_get_serial_sequence('${table}', 'id'), (select max(id) from ${table}))`));
  }
}
