// Every table of the schema, for drizzle and the `@ingest/db/schema` export.
export { products } from "./products.js";
export { features } from "./features.js";
export { styles } from "./styles.js";
export { photos } from "./photos.js";
export { skus } from "./skus.js";
export { related } from "./related.js";
export { registrations } from "./registrations.js";
export { jobLedger } from "./job-ledger.js";
export { productVersions } from "./product-versions.js";
export { emailSends } from "./email-sends.js";
