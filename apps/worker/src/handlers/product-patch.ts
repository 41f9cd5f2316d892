// The product.patch handler: changes the given fields of an existing product.
import { products } from "@ingest/db";
import { eq } from "drizzle-orm";
import { PermanentJobError } from "../errors.js";
import type { Handler } from "./types.js";
import { patchColumns, replaceFeatures, touch } from "./product-rows.js";

export const patchProduct: Handler<"product.patch"> = async (tx, { productId, changes }) => {
  const rows = await tx
    .update(products)
    .set({ ...patchColumns(changes), ...touch })
    .where(eq(products.id, productId))
    .returning({ id: products.id });
  // Every earlier edit of this product has been applied by now (the runner waits
  // for them), so a missing product stays missing: retrying cannot help.
  if (rows.length === 0) throw new PermanentJobError("PRODUCT_NOT_FOUND", `product ${productId} does not exist`);
  if (changes.features !== undefined) await replaceFeatures(tx, productId, changes.features);
  return { productId };
};
