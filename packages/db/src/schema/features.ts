// The features table: a product's feature/value pairs.
import { index, integer, pgTable, varchar } from "drizzle-orm/pg-core";
import { products } from "./products.js";

export const features = pgTable(
  "features",
  {
    id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
    productId: integer("product_id")
      .notNull()
      .references(() => products.id, { onDelete: "cascade" }),
    feature: varchar("feature", { length: 255 }).notNull(),
    value: varchar("value", { length: 255 }),
  },
  (t) => [index("features_product_id_idx").on(t.productId)],
);
