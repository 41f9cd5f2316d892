import { describe, expect, it } from "vitest";
import { parseBulkLine } from "../src/bulk.js";
import { ZProduct, ZProductPatch, ZRegistration, ZWelcomeEmailJob } from "../src/payloads.js";
import { check, normalisePrice } from "../src/validate.js";

const product = { name: "Camo Onesie", category: "Jackets", default_price: "140.00" };
const errorsOf = (result: ReturnType<typeof check>) => (result.ok ? [] : result.errors);
const PRICE_RULE = 'must be a non-negative decimal with at most 2 decimals, like "140.00"';

describe("check: strings PostgreSQL could not store", () => {
  it("refuses U+0000 in every string field of every payload, naming the field", () => {
    const cases: [Parameters<typeof check>[0], unknown, string][] = [
      [ZRegistration, { email: "a@b.co", name: "a\u0000b" }, "/name"],
      [ZRegistration, { email: "a\u0000@b.co", name: "A" }, "/email"],
      [ZProduct, { ...product, name: "\u0000" }, "/name"],
      [ZProduct, { ...product, category: "  \u0000x" }, "/category"],
      [ZProduct, { ...product, slogan: "x\u0000" }, "/slogan"],
      [ZProduct, { ...product, description: "\u0000" }, "/description"],
      [ZProduct, { ...product, features: [{ feature: "a\u0000", value: "v" }] }, "/features/0/feature"],
      [ZProduct, { ...product, features: [{ feature: "a", value: "\u0000v" }] }, "/features/0/value"],
      [ZProductPatch, { slogan: "x\u0000" }, "/slogan"],
      [ZWelcomeEmailJob, { registrationId: 1, email: "a@b.co", name: "\u0000" }, "/name"],
    ];
    for (const [schema, input, path] of cases) {
      expect(errorsOf(check(schema, input)), path).toContainEqual({ path, message: "must not contain NUL characters or unpaired surrogates" });
    }
  });

  it("still tells blank from NUL, and accepts ordinary text with other control characters", () => {
    expect(errorsOf(check(ZRegistration, { email: "a@b.co", name: " \t " }))).toEqual([{ path: "/name", message: "must not be blank" }]);
    expect(check(ZRegistration, { email: "a@b.co", name: " a\u0001b\tc " }).ok).toBe(true);
    expect(check(ZProduct, { ...product, slogan: "", description: null, features: [{ feature: "f", value: "" }] }).ok).toBe(true);
  });

  it("refuses lone UTF-16 surrogates, which PostgreSQL cannot store, and keeps characters outside the BMP", () => {
    // JSON.parse of "\ud800" gives a lone surrogate; a pair is one character (an emoji).
    const lone = JSON.parse('"a\\ud800b"') as string;
    expect(errorsOf(check(ZRegistration, { email: "a@b.co", name: lone }))).toEqual([
      { path: "/name", message: "must not contain NUL characters or unpaired surrogates" },
    ]);
    expect(errorsOf(check(ZProduct, { ...product, slogan: JSON.parse('"\\udc00"') as string }))).toEqual([
      { path: "/slogan", message: "must not contain NUL characters or unpaired surrogates" },
    ]);
    expect(check(ZRegistration, { email: "a@b.co", name: "Zoë 😀 \u{1F600}" }).ok).toBe(true);
    expect(check(ZProduct, { ...product, name: "😀", features: [{ feature: "𝄞", value: "😀" }] }).ok).toBe(true);
  });

  it("a bulk line with U+0000 is an invalid line with the same message", () => {
    const parsed = parseBulkLine(JSON.stringify({ op: "patch", id: 5, changes: { slogan: "x\u0000" } }), 3);
    expect(parsed).toEqual({ ok: false, invalid: { line: 3, errors: [{ path: "/changes/slogan", message: "must not contain NUL characters or unpaired surrogates" }] } });
  });

  it("stays linear on long strings with a NUL at the end", () => {
    const started = performance.now();
    check(ZProduct, { ...product, name: `${" ".repeat(50_000)}${"x".repeat(50_000)}\u0000`, description: `${"y".repeat(100_000)}\u0000` });
    // Generous: a backtracking pattern would take seconds here, a linear one a few ms.
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});

describe("check: messages that name the rule", () => {
  it.each([
    ["a description over 10000", { ...product, description: "x".repeat(10_001) }, "/description", "must be at most 10000 characters"],
    ["a slogan over 1000", { ...product, slogan: "x".repeat(100_000) }, "/slogan", "must be at most 1000 characters"],
    ["a name over 255", { ...product, name: "x".repeat(256) }, "/name", "must be at most 255 characters"],
    ["an empty name", { ...product, name: "" }, "/name", "must not be empty"],
    ["a slogan of the wrong type", { ...product, slogan: 5 }, "/slogan", "must be string or null"],
    ["a price of -1", { ...product, default_price: -1 }, "/default_price", PRICE_RULE],
    ["a price of \"-1\"", { ...product, default_price: "-1" }, "/default_price", PRICE_RULE],
    ["a price of \"abc\"", { ...product, default_price: "abc" }, "/default_price", PRICE_RULE],
    ["a price of \"140.123\"", { ...product, default_price: "140.123" }, "/default_price", PRICE_RULE],
    ["a price of true", { ...product, default_price: true }, "/default_price", PRICE_RULE],
    ["101 features", { ...product, features: Array.from({ length: 101 }, () => ({ feature: "f" })) }, "/features", "must have at most 100 items"],
  ])("%s", (_name, input, path, message) => {
    expect(errorsOf(check(ZProduct, input))).toEqual([{ path, message }]);
  });

  it("an unknown plan lists the allowed ones; a bad email says so", () => {
    expect(errorsOf(check(ZRegistration, { email: "a@b.co", name: "A", plan: "gold" }))).toEqual([
      { path: "/plan", message: 'must be one of "free", "pro", "team"' },
    ]);
    expect(errorsOf(check(ZRegistration, { email: "nope", name: "A" }))).toEqual([{ path: "/email", message: "must be an email address" }]);
  });
});

describe("prices", () => {
  it("normalises numbers and strings with at most 2 decimals", () => {
    for (const [input, expected] of [
      [0.3, "0.30"],
      [140, "140.00"],
      [12.5, "12.50"],
      [-0, "0.00"],
      [9_999_999_999.99, "9999999999.99"],
      ["9.5", "9.50"],
      ["0", "0.00"],
    ] as const) {
      expect(normalisePrice(input), String(input)).toBe(expected);
    }
  });

  it("refuses numbers whose shortest decimal form has more than 2 decimals or an exponent, rather than rounding them", () => {
    for (const input of [0.1 + 0.2, 1.10000000001, 5e-324, 1e-7, 1e21, 140.123, 1.005, -1, "140.123", "1.005", "-1"]) {
      expect(normalisePrice(input), String(input)).toBeUndefined();
      expect(errorsOf(check(ZProduct, { ...product, default_price: input })), String(input)).toEqual([{ path: "/default_price", message: PRICE_RULE }]);
    }
  });
});
