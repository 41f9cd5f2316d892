// The product.delete handler: deletes a product, its child rows going with it.
import { products } from "@ingest/db";
import { eq } from "drizzle-orm";
import type { Handler } from "./types.js";

// Features, styles, photos, skus and related rows go with it (ON DELETE CASCADE).
// Deleting a product that is already gone is not an error: the outcome is the same.
export const deleteProduct: Handler<"product.delete"> = async (tx, { productId }) => {
  await tx.delete(products).where(eq(products.id, productId));
  return { productId, deleted: true };
};
