/** Field schemas shared by every resource: ids, names, free text, JSON objects, timestamps. */
import { z } from "@hono/zod-openapi";

/** The most items one bulk request (registerImages, createPredictions, setPriorities) carries. */
export const MAX_BATCH = 10_000;

/** Ids are decimal strings (PostgreSQL bigint), at most 18 digits so they always fit. */
export const Id = z.string().regex(/^[1-9][0-9]{0,17}$/, "must be a decimal id").openapi({
  example: "42",
});

/**
 * JSON Schema keywords for `.openapi({...})` that zod cannot state. Typed loosely: the metadata
 * type of zod-to-openapi lists OpenAPI 3.0's keywords only (no propertyNames, no const), while the
 * document is OpenAPI 3.1, whose schemas are JSON Schema 2020-12.
 */
export const keywords = (k: Record<string, unknown>) => k as Record<string, never>;

/**
 * A bulk item (createPredictions, setPriorities) names its image by exactly one of image_id and
 * external_id: the zod `.refine` that says so, as JSON Schema.
 */
export const ONE_IMAGE_REF = [{ required: ["image_id"] }, { required: ["external_id"] }];

export const idParam = (name: string) =>
  Id.openapi({ param: { name, in: "path" }, description: `the ${name.replace(/Id$/, "")} id` });

/**
 * JavaScript's whitespace, spelled out: exactly what `String.prototype.trim` removes (WhiteSpace
 * and LineTerminator in ECMA-262). Spelled out rather than `\s` so that JSON Schema validators
 * in other languages, whose `\s` differs (Python's includes U+001C–U+001F, not U+FEFF), agree
 * with the server on what is blank.
 */
export const WHITESPACE =
  "\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff";

/**
 * No NUL character (PostgreSQL cannot store one in text). Patterns are checked by zod on the
 * server and written as `pattern` into the OpenAPI document, so both say the same thing.
 */
// deno-lint-ignore no-control-regex -- NUL is the character this refuses
export const NO_NUL = /^[^\u0000]*$/;

/**
 * Not blank (something besides whitespace) and no NUL. Linear: the leading whitespace and the
 * first other character cannot overlap, so nothing backtracks.
 */
export const NOT_BLANK = new RegExp(`^[${WHITESPACE}]*[^${WHITESPACE}\\u0000][^\\u0000]*$`);

/** Text without NUL characters, limited to `max` characters. */
export const Text = (max: number) =>
  z.string().max(max, `must be at most ${max} characters`).regex(
    NO_NUL,
    "must not contain NUL characters",
  );

/** Non-blank text without NUL characters, limited to `max` characters. */
export const Name = (max: number) =>
  z.string().max(max, `must be at most ${max} characters`).regex(
    NOT_BLANK,
    "must not be blank or contain NUL characters",
  );

/** A finite float: zod 4 numbers refuse NaN and ±Infinity (JSON's `1e999` parses to Infinity). */
export const Finite = z.number();

const MAX_JSON_BYTES = 16 * 1024;
const utf8 = new TextEncoder();

/**
 * A NUL character as JSON.stringify writes it: `\u0000` after an even number of backslashes
 * (an odd number means the backslash is itself escaped text, e.g. the string `C:\u0000`).
 */
const JSON_NUL = /(?<!\\)(?:\\\\)*\\u0000/;

/**
 * Any JSON value without a NUL character in its strings or keys, as JSON Schema: the OpenAPI
 * component `JsonValue` (createApp registers it). Recursive, which zod could check too, but the
 * one pass over JSON.stringify's text below is far cheaper for a 10,000-image batch; the two are
 * held together by tests/spec_rules_test.ts.
 */
export const JSON_VALUE_COMPONENT = keywords({
  description: "Any JSON value without a NUL character (U+0000) in its strings or keys",
  anyOf: [
    { type: ["null", "boolean", "number"] },
    { type: "string", pattern: NO_NUL.source },
    { type: "array", items: { $ref: "#/components/schemas/JsonValue" } },
    {
      type: "object",
      propertyNames: { pattern: NO_NUL.source },
      additionalProperties: { $ref: "#/components/schemas/JsonValue" },
    },
  ],
});

/**
 * A JSON object stored as jsonb: at most MAX_JSON_BYTES as JSON, no NUL characters anywhere in
 * it. JSON Schema can state the second (recursively, JSON_VALUE_COMPONENT), not the first: that
 * one is in the description. Among parsed JSON values, those of typeof "object" are objects,
 * arrays and null, so that test is the whole check, and the object is passed on as it is: zod's
 * record would copy each one key by key (10-25 ms of a 10,000-image registerImages batch,
 * against 2-7).
 */
export const JsonObject = z.custom<Record<string, unknown>>(
  (v) => typeof v === "object" && v !== null && !Array.isArray(v),
  "must be a JSON object",
).superRefine((value, ctx) => {
  const text = JSON.stringify(value);
  // UTF-8 bytes, not UTF-16 code units: "é" is one character but two bytes. A code unit is at
  // most 3 bytes, so only a text over a third of the bound needs counting (most need not: this
  // runs for every image of a 10,000-image batch).
  if (text.length * 3 > MAX_JSON_BYTES && utf8.encode(text).length > MAX_JSON_BYTES) {
    ctx.addIssue({ code: "custom", message: `must be at most ${MAX_JSON_BYTES} bytes as JSON` });
  }
  if (JSON_NUL.test(text)) {
    ctx.addIssue({ code: "custom", message: "must not contain NUL characters" });
  }
}).openapi({
  type: "object",
  ...keywords({
    propertyNames: { pattern: NO_NUL.source },
    additionalProperties: { $ref: "#/components/schemas/JsonValue" },
  }),
  description: `A JSON object of at most ${MAX_JSON_BYTES} bytes (16 KiB) as compact JSON in ` +
    "UTF-8 (as JSON.stringify writes it), with no NUL character (U+0000) in any key or string",
  example: { camera: "front" },
});

export const Timestamp = z.string().openapi({
  format: "date-time",
  example: "2026-11-25T09:00:00Z",
});
