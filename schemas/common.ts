/** Field schemas shared by every resource: ids, names, free text, JSON objects, timestamps. */
import { z } from "@hono/zod-openapi";

/** The most items one bulk request (registerImages, createPredictions, setPriorities) carries. */
export const MAX_BATCH = 10_000;

/** Ids are decimal strings (PostgreSQL bigint), at most 18 digits so they always fit. */
export const Id = z.string().regex(/^[1-9][0-9]{0,17}$/, "must be a decimal id").openapi({
  example: "42",
});

export const idParam = (name: string) =>
  Id.openapi({ param: { name, in: "path" }, description: `the ${name.replace(/Id$/, "")} id` });

/** Text without NUL characters (PostgreSQL cannot store them), limited to `max` characters. */
export const Text = (max: number) =>
  z.string().max(max, `must be at most ${max} characters`).refine(
    (s) => !s.includes("\u0000"),
    "must not contain NUL characters",
  );

/** Non-blank text. */
export const Name = (max: number) =>
  Text(max).refine((s) => s.trim().length > 0, "must not be blank");

/** A finite float: zod 4 numbers refuse NaN and ±Infinity (JSON's `1e999` parses to Infinity). */
export const Finite = z.number();

const MAX_JSON_BYTES = 16 * 1024;
const utf8 = new TextEncoder();

/**
 * A NUL character as JSON.stringify writes it: `\u0000` after an even number of backslashes
 * (an odd number means the backslash is itself escaped text, e.g. the string `C:\u0000`).
 */
const JSON_NUL = /(?<!\\)(?:\\\\)*\\u0000/;

/** A JSON object stored as jsonb: bounded in size, no NUL characters anywhere in it. */
export const JsonObject = z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
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
}).openapi({ type: "object", additionalProperties: true, example: { camera: "front" } });

export const Timestamp = z.string().openapi({
  format: "date-time",
  example: "2026-11-25T09:00:00Z",
});
