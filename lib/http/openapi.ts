/**
 * OpenAPI plumbing every route uses: the error responses each operation documents, JSON bodies
 * and responses, and reading a body that the handler validates itself.
 */
import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { ApiError } from "./errors.ts";

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
    // which Deno reports as BadResource).
    if (e instanceof ApiError || e instanceof HTTPException) throw e;
    throw new HTTPException(400, { message: "Malformed JSON in request body" });
  }
}

/** A JSON response. */
export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } } as const;
}
