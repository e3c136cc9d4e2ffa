/** Schemas shared by several routes, and the error responses every operation documents. */
import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { ApiError } from "./errors.ts";

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

export const ErrorSchema = z.object({
  error: z.object({
    code: z.string().openapi({ example: "validation_failed" }),
    message: z.string().openapi({ example: "body.labels: must contain at least 1 item" }),
    details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  }),
}).openapi("Error");

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: "The request is malformed or fails validation",
  401: "Missing or invalid credentials",
  403: "The caller may not do this",
  404: "Not found",
  409: "Conflicts with the current state",
  413: "The request body is too large",
  415: "The body must be application/json",
  422: "Valid JSON that cannot be applied to the current state",
  503: "Unavailable, try again: the database (or the identity provider) did not answer, or " +
    "the request took longer than REQUEST_TIMEOUT_MS",
};

type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 503;

/**
 * `responses` entries for the given error statuses, all with the one error shape. 503 is always
 * among them: any operation can time out or find the database unavailable.
 */
export function errors<S extends ErrorStatus>(...statuses: S[]) {
  const all = [...new Set<ErrorStatus>([...statuses, 503])];
  return Object.fromEntries(
    all.map((s) => [s, {
      description: ERROR_DESCRIPTIONS[s],
      content: { "application/json": { schema: ErrorSchema } },
    }]),
  ) as Record<
    S | 503,
    { description: string; content: { "application/json": { schema: typeof ErrorSchema } } }
  >;
}

/** A required JSON request body. */
export function jsonBody<T extends z.ZodType>(schema: T, description?: string) {
  return {
    required: true,
    description,
    content: { "application/json": { schema } },
  } as const;
}

/**
 * A required JSON request body that the handler reads and validates itself (readJsonBody), for
 * a route that validates while it works (registerImages inserts one part of a batch while it
 * validates the next). zod-openapi validates a body declared as a zod schema before the handler
 * runs, so this one is declared by reference to the component `name`, which the router
 * registers from the zod schema the handler validates with: the spec shows the same schema.
 */
export function jsonBodyRef(name: string, description?: string) {
  return {
    required: true,
    description,
    content: { "application/json": { schema: { $ref: `#/components/schemas/${name}` } } },
  } as const;
}

/** The JSON media types zod-openapi accepts for a JSON body (its jsonRequestRegex). */
const JSON_MEDIA_TYPE = /^application\/([a-z-.]+\+)?json(;\s*[a-zA-Z0-9-]+=([^;]+))*$/i;

/**
 * The parsed body of a route declared with jsonBodyRef, refused as zod-openapi refuses a body it
 * validates: 415 for another content type, 400 for malformed JSON. A request without a body and
 * without a content type reads as `{}` (which then fails validation), as there.
 */
export async function readJsonBody(c: Context): Promise<unknown> {
  const type = c.req.header("content-type");
  if (!type) {
    if (c.req.raw.body && (await c.req.arrayBuffer()).byteLength > 0) {
      throw new HTTPException(415, { message: "Unsupported Media Type" });
    }
    return {};
  }
  if (!JSON_MEDIA_TYPE.test(type)) {
    throw new HTTPException(415, { message: "Unsupported Media Type" });
  }
  try {
    return await c.req.json();
  } catch (e) {
    // A refusal while reading (413 from the body limit) keeps its own answer. Anything else is
    // the body's fault, as there: not JSON, or cut off (the client hung up while sending it,
    // which Deno reports as BadResource: it was a 500 in deno task stress's limits scenario).
    if (e instanceof ApiError || e instanceof HTTPException) throw e;
    throw new HTTPException(400, { message: "Malformed JSON in request body" });
  }
}

/** A JSON response. */
export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } } as const;
}
