import { Type, type Static, type TSchema } from "@sinclair/typebox";

// Request bodies and job payloads share these schemas: the API validates with them,
// the worker re-checks with them, and the OpenAPI document is made from them.

const PRICE_PATTERN = "^(0|[1-9][0-9]{0,9})(\\.[0-9]{1,2})?$";
export const MAX_PRICE = 9_999_999_999.99;

const text = (maxLength: number, description?: string) =>
  Type.String({ minLength: 1, maxLength, pattern: "\\S", ...(description ? { description } : {}) });

export const ZPrice = Type.Union(
  [
    Type.String({ pattern: PRICE_PATTERN }),
    Type.Number({ minimum: 0, maximum: MAX_PRICE }),
  ],
  { description: "non-negative decimal with at most 2 decimals, as a string (\"140.00\") or a number" },
);

export const ZFeature = Type.Object(
  {
    feature: text(255),
    value: Type.Optional(Type.Union([Type.String({ maxLength: 255 }), Type.Null()])),
  },
  { additionalProperties: false },
);

const productFields = {
  name: text(255),
  slogan: Type.Union([Type.String({ maxLength: 1000 }), Type.Null()]),
  description: Type.Union([Type.String({ maxLength: 10_000 }), Type.Null()]),
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
    email: Type.String({ format: "email", minLength: 3, maxLength: 254 }),
    name: text(255),
    plan: Type.Optional(Type.Union([Type.Literal("free"), Type.Literal("pro"), Type.Literal("team")])),
    marketingOptIn: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, $id: "Registration" },
);

export type TProduct = Static<typeof ZProduct>;
export type TProductPatch = Static<typeof ZProductPatch>;
export type TRegistration = Static<typeof ZRegistration>;

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

export type TSchemaOf<T extends TSchema> = Static<T>;
