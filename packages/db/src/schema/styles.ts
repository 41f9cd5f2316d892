// The styles table: a product's styles and their prices.
import { boolean, index, integer, numeric, pgTable, varchar } from "drizzle-orm/pg-core";
import { products } from "./products.js";

export const styles = pgTable(
  "styles",
  {
    id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
    productId: integer("product_id")
      .notNull()
      .references(() => products.id, { onDelete: "cascade" }),
    name: varchar("name", { length: 255 }).notNull(),
    originalPrice: numeric("original_price", { precision: 12, scale: 2 }).notNull(),
    salePrice: numeric("sale_price", { precision: 12, scale: 2 }),
    defaultStyle: boolean("default_style").notNull().default(false),
  },
  (t) => [index("styles_product_id_idx").on(t.productId)],
);
