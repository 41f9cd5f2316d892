// The payload schemas of the write jobs (products, features, registrations) and their types.
import { Type, type Static } from "@sinclair/typebox";

// Request bodies and job payloads share these schemas: the API validates with them,
// the worker re-checks with them, and the OpenAPI document is made from them.

export const PRICE_PATTERN = "^(0|[1-9][0-9]{0,9})(\\.[0-9]{1,2})?$";
const MAX_PRICE = 9_999_999_999.99;

// PostgreSQL text cannot hold U+0000, nor a lone UTF-16 surrogate (JSON lets "\\ud800"
// through; it is no character at all), so no string may carry either. Ajv compiles
// patterns with the "u" flag, under which a well-formed pair is one code point outside
// the surrogate range. Both patterns are linear: no input makes them backtrack more
// than once per character.
export const NO_NUL_PATTERN = "^[^\\u0000\\uD800-\\uDFFF]*$";
/** Something other than whitespace, and no U+0000 or lone surrogate. */
export const NOT_BLANK_PATTERN = "^\\s*[^\\s\\u0000\\uD800-\\uDFFF][^\\u0000\\uD800-\\uDFFF]*$";

const text = (maxLength: number, description?: string) =>
  Type.String({ minLength: 1, maxLength, pattern: NOT_BLANK_PATTERN, ...(description ? { description } : {}) });
const nullableText = (maxLength: number) => Type.Union([Type.String({ maxLength, pattern: NO_NUL_PATTERN }), Type.Null()]);

const ZPrice = Type.Union(
  [
    Type.String({ pattern: PRICE_PATTERN }),
    Type.Number({ minimum: 0, maximum: MAX_PRICE }),
  ],
  { description: "non-negative decimal with at most 2 decimals, as a string (\"140.00\") or a number (140, 12.5)" },
);

const ZFeature = Type.Object(
  {
    feature: text(255),
    value: Type.Optional(nullableText(255)),
  },
  { additionalProperties: false },
);

const productFields = {
  name: text(255),
  slogan: nullableText(1000),
  description: nullableText(10_000),
  category: text(255),
  default_price: ZPrice,
  features: Type.Array(ZFeature, { maxItems: 100 }),
};

export const ZProduct = Type.Object(
  {
    name: productFields.name,
    slogan: Type.Optional(productFields.slogan),
    description: Type.Optional(productFields.description),
    category: productFields.category,
    default_price: productFields.default_price,
    features: Type.Optional(productFields.features),
  },
  { additionalProperties: false, $id: "Product" },
);

export const ZProductPatch = Type.Object(
  {
    name: Type.Optional(productFields.name),
    slogan: Type.Optional(productFields.slogan),
    description: Type.Optional(productFields.description),
    category: Type.Optional(productFields.category),
    default_price: Type.Optional(productFields.default_price),
    features: Type.Optional(productFields.features),
  },
  { additionalProperties: false, minProperties: 1, $id: "ProductPatch" },
);

export const ZRegistration = Type.Object(
  {
    email: Type.String({ format: "email", minLength: 3, maxLength: 254, pattern: NO_NUL_PATTERN }),
    name: text(255),
    plan: Type.Optional(Type.Union([Type.Literal("free"), Type.Literal("pro"), Type.Literal("team")])),
    marketingOptIn: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, $id: "Registration" },
);

export type TProduct = Static<typeof ZProduct>;
export type TProductPatch = Static<typeof ZProductPatch>;

const ZProductId = Type.Integer({ minimum: 1, maximum: 2_147_483_647 });

// Job payloads: what the producer stores and the worker reads.
export const ZRegistrationCreateJob = Type.Object({ registration: ZRegistration }, { additionalProperties: false });
export const ZProductCreateJob = Type.Object({ product: ZProduct }, { additionalProperties: false });
export const ZProductReplaceJob = Type.Object(
  { productId: ZProductId, product: ZProduct },
  { additionalProperties: false },
);
export const ZProductPatchJob = Type.Object(
  { productId: ZProductId, changes: ZProductPatch },
  { additionalProperties: false },
);
export const ZProductDeleteJob = Type.Object({ productId: ZProductId }, { additionalProperties: false });

// A follow-up the worker adds once a registration is created (emails.ts).
export const ZWelcomeEmailJob = Type.Object(
  {
    registrationId: Type.Integer({ minimum: 1, maximum: 2_147_483_647 }),
    email: ZRegistration.properties.email,
    name: ZRegistration.properties.name,
  },
  { additionalProperties: false },
);
export type TWelcomeEmailJob = Static<typeof ZWelcomeEmailJob>;
