// The related table: the products each product points to as related.
import { index, integer, pgTable } from "drizzle-orm/pg-core";
import { products } from "./products.js";

// related_product_id carries no foreign key: catalog exports reference products
// that are not (yet) in the table, and reads simply return the ids.
export const related = pgTable(
  "related",
  {
    id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
    productId: integer("product_id")
      .notNull()
      .references(() => products.id, { onDelete: "cascade" }),
    relatedProductId: integer("related_product_id").notNull(),
  },
  (t) => [index("related_product_id_idx").on(t.productId)],
);
