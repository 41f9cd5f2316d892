// The product_versions table: the last edit applied to each product id.
import { sql } from "drizzle-orm";
import { bigint, integer, pgTable, timestamp } from "drizzle-orm/pg-core";

// The sequence number of the last edit applied to each product id, kept after a
// delete so that an older edit arriving late cannot bring the product back.
export const productVersions = pgTable("product_versions", {
  productId: integer("product_id").primaryKey(),
  seq: bigint("seq", { mode: "number" }).notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().default(sql`now()`),
});
