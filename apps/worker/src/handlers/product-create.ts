// The product.create handler: inserts a product with its features at a free id.
import type { Handler } from "./types.js";
import { insertAtFreeId, productColumns, replaceFeatures } from "./product-rows.js";

export const createProduct: Handler<"product.create"> = async (tx, { product }) => {
  // A miss means a concurrent PUT took the id drawn; each draw moves past it.
  for (let attempt = 0; attempt < 5; attempt++) {
    const id = await insertAtFreeId(tx, productColumns(product));
    if (id !== undefined) {
      await replaceFeatures(tx, id, product.features ?? []);
      return { productId: id };
    }
  }
  throw new Error("could not draw a free product id");
};
