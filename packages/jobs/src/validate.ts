// Validates a payload against its schema once, with readable field errors and normalised prices.
import type { Static, TSchema } from "@sinclair/typebox";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import { NO_NUL_PATTERN, NOT_BLANK_PATTERN, PRICE_PATTERN } from "./payloads.js";

export type FieldError = { path: string; message: string };
type Checked<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

// ajv-formats is CommonJS with a default export; under ESM interop it may arrive wrapped.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ??
  addFormatsModule) as unknown as (ajv: Ajv, formats: string[]) => Ajv;

// verbose: errors carry their schema and data, which the messages below read; it costs
// nothing on the success path.
const ajv = new Ajv({ allErrors: true, verbose: true, strict: false, coerceTypes: false, useDefaults: false });
addFormats(ajv, ["email"]);

const compiled = new WeakMap<TSchema, ValidateFunction>();

function compile(schema: TSchema): ValidateFunction {
  let fn = compiled.get(schema);
  if (!fn) {
    // $id would register the schema globally in ajv; compile a copy without it.
    const { $id: _id, ...rest } = schema as TSchema & { $id?: string };
    fn = ajv.compile(rest);
    compiled.set(schema, fn);
  }
  return fn;
}

const PRICE_MESSAGE = 'must be a non-negative decimal with at most 2 decimals, like "140.00"';
const NUL_MESSAGE = "must not contain NUL characters or unpaired surrogates";
// What NO_NUL_PATTERN refuses, to tell it from a blank string.
const UNSTORABLE = /[\u0000\uD800-\uDFFF]/u;
const PRICE = new RegExp(PRICE_PATTERN);

type Branch = { type?: string; const?: unknown; pattern?: string };

const joinPath = (base: string, key: string) => `${base}/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`;

// Messages name the rule that was broken, in the client's terms.
function describe(e: ErrorObject): FieldError {
  const path = e.instancePath || "/";
  const limit = e.params.limit as number;
  switch (e.keyword) {
    case "additionalProperties":
      return { path: joinPath(e.instancePath, String(e.params.additionalProperty)), message: "is not a known field" };
    case "required":
      return { path: joinPath(e.instancePath, String(e.params.missingProperty)), message: "is required" };
    case "pattern":
      switch (e.params.pattern) {
        case PRICE_PATTERN:
          return { path, message: PRICE_MESSAGE };
        case NO_NUL_PATTERN:
          return { path, message: NUL_MESSAGE };
        case NOT_BLANK_PATTERN:
          return { path, message: UNSTORABLE.test(String(e.data)) ? NUL_MESSAGE : "must not be blank" };
        default:
          return { path, message: "has an invalid format" };
      }
    case "maxLength":
      return { path, message: `must be at most ${limit} characters` };
    case "minLength":
      return { path, message: limit === 1 ? "must not be empty" : `must be at least ${limit} characters` };
    case "maxItems":
      return { path, message: `must have at most ${limit} items` };
    case "minimum":
      return { path, message: `must be at least ${limit}` };
    case "maximum":
      return { path, message: `must be at most ${limit}` };
    case "format":
      return { path, message: e.params.format === "email" ? "must be an email address" : `must be a valid ${String(e.params.format)}` };
    case "minProperties":
      return { path, message: "must have at least one field" };
    default:
      return { path, message: e.message ?? "is invalid" };
  }
}

/**
 * A union fails with one error per branch plus its own; say what the value's own
 * branch wanted (a string too long, not "must match a schema in anyOf").
 */
function describeUnion(union: ErrorObject, branchErrors: ErrorObject[]): FieldError[] {
  const path = union.instancePath || "/";
  const branches = union.schema as Branch[];
  if (branches.some((b) => b.pattern === PRICE_PATTERN)) return [{ path, message: PRICE_MESSAGE }];
  if (branches.every((b) => "const" in b)) {
    return [{ path, message: `must be one of ${branches.map((b) => JSON.stringify(b.const)).join(", ")}` }];
  }
  const ofItsType = branchErrors.filter((e) => e.keyword !== "type" || e.instancePath !== union.instancePath);
  if (ofItsType.length) return explain(ofItsType);
  return [{ path, message: `must be ${branches.map((b) => b.type ?? "valid").join(" or ")}` }];
}

function explain(errors: ErrorObject[]): FieldError[] {
  const unions = errors.filter((e) => e.keyword === "anyOf");
  const inside = (e: ErrorObject, u: ErrorObject) => e !== u && e.schemaPath.startsWith(`${u.schemaPath}/`);
  return errors
    .filter((e) => !unions.some((u) => inside(e, u)))
    // An empty string is blank too; minLength already says it must not be empty.
    .filter((e) => !(e.keyword === "pattern" && e.data === "" && e.params.pattern === NOT_BLANK_PATTERN))
    .flatMap((e) => (e.keyword === "anyOf" ? describeUnion(e, errors.filter((b) => inside(b, e))) : [describe(e)]));
}

function formatErrors(errors: ErrorObject[]): FieldError[] {
  const out: FieldError[] = [];
  const seen = new Set<string>();
  for (const described of explain(errors)) {
    const key = `${described.path}\u0000${described.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(described);
    }
  }
  return out;
}

/**
 * Prices travel as decimal strings with two decimals; numbers are accepted and
 * normalised. A number is judged by its shortest decimal form (String(n)), the digits
 * the client most likely wrote: 12.5 is "12.50", but 0.1 + 0.2 (0.30000000000000004),
 * 1e-7 and 1e+21 are refused rather than rounded.
 */
export function normalisePrice(value: string | number): string | undefined {
  const decimal = typeof value === "number" ? String(value) : value;
  if (!PRICE.test(decimal)) return undefined;
  const [whole = "0", frac = ""] = decimal.split(".");
  return `${whole}.${frac.padEnd(2, "0")}`;
}

function normalisePrices(value: unknown, path: string, errors: FieldError[]): void {
  if (!value || typeof value !== "object") return;
  for (const [key, v] of Object.entries(value)) {
    if (key === "default_price" && (typeof v === "string" || typeof v === "number")) {
      const price = normalisePrice(v);
      if (price === undefined) errors.push({ path: `${path}/${key}`, message: PRICE_MESSAGE });
      else (value as Record<string, unknown>)[key] = price;
    } else if (v && typeof v === "object" && !Array.isArray(v)) {
      normalisePrices(v, `${path}/${key}`, errors);
    }
  }
}

/** Validates against a schema and normalises prices in place; the input must be a fresh parse. */
export function check<S extends TSchema>(schema: S, input: unknown): Checked<Static<S>> {
  const fn = compile(schema);
  if (!fn(input)) return { ok: false, errors: formatErrors(fn.errors ?? []) };
  const errors: FieldError[] = [];
  normalisePrices(input, "", errors);
  if (errors.length) return { ok: false, errors };
  return { ok: true, value: input as Static<S> };
}
