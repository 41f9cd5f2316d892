// The skus table: a style's sizes and their stock.
import { index, integer, pgTable, varchar } from "drizzle-orm/pg-core";
import { styles } from "./styles.js";

export const skus = pgTable(
  "skus",
  {
    id: integer("id").primaryKey().generatedByDefaultAsIdentity(),
    styleId: integer("style_id")
      .notNull()
      .references(() => styles.id, { onDelete: "cascade" }),
    size: varchar("size", { length: 32 }).notNull(),
    quantity: integer("quantity").notNull().default(0),
  },
  (t) => [index("skus_style_id_idx").on(t.styleId)],
);
