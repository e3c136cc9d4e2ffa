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
    code: z.string().openapi({ description: "For programs: what went wrong (docs/api.md#errors)" }),
    message: z.string().openapi({ description: "For people" }),
    details: z.array(z.object({ path: z.string(), message: z.string() })).optional().openapi({
      description: "Where in the request (body.…, query.…, path.…), at most 50",
    }),
  }),
}).openapi("Error");

type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 503;

const ERROR_DESCRIPTIONS: Record<ErrorStatus, string> = {
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

interface ErrorExample {
  status: ErrorStatus;
  code: string;
  message: string;
  details?: { path: string; message: string }[];
}

/** One failure's body, with `path` in details as validation failures have it. */
function invalid(path: string, message: string): Omit<ErrorExample, "status"> {
  return {
    code: "validation_failed",
    message: `${path}: ${message}`,
    details: [{ path, message }],
  };
}

/**
 * Example error bodies, by name: each is an answer the server gives (the messages are the
 * server's own). A route names the ones its operation can answer (`errors(...)`).
 */
const EXAMPLES = {
  invalid_body: {
    status: 400,
    ...invalid("body.name", "must not be blank or contain NUL characters"),
  },
  malformed_json: { status: 400, code: "bad_request", message: "Malformed JSON in request body" },
  invalid_dataset_id: { status: 400, ...invalid("path.datasetId", "must be a decimal id") },
  invalid_image_id: { status: 400, ...invalid("path.imageId", "must be a decimal id") },
  invalid_claim_id: { status: 400, ...invalid("path.claimId", "must be a decimal id") },
  invalid_user_id: { status: 400, ...invalid("path.userId", "must be a decimal id") },
  invalid_review_id: { status: 400, ...invalid("path.reviewId", "must be a decimal id") },
  invalid_annotation_id: { status: 400, ...invalid("path.annotationId", "must be a decimal id") },
  invalid_token_request: {
    status: 400,
    ...invalid("body.api_key", "Invalid input: expected string, received undefined"),
  },
  no_dataset_change: { status: 400, ...invalid("body", "give at least one field to change") },
  no_image_change: { status: 400, ...invalid("body", "give priority and/or metadata") },
  invalid_images: {
    status: 400,
    ...invalid(
      "body.images.0.uri",
      "must be an s3://, gs://, https://, http:// or file:// URI without spaces",
    ),
  },
  invalid_priorities: {
    status: 400,
    ...invalid("body.priorities.0", "give exactly one of image_id and external_id"),
  },
  invalid_prediction: {
    status: 400,
    ...invalid("body.predictions.0", "give exactly one of image_id and external_id"),
  },
  invalid_format: {
    status: 400,
    ...invalid("query.format", 'Invalid option: expected one of "jsonl"|"coco"'),
  },
  invalid_limit: {
    status: 400,
    ...invalid("query.limit", "Too big: expected number to be <=1000"),
  },
  invalid_skip: {
    status: 400,
    ...invalid("query.skip", 'Invalid option: expected one of "true"|"false"'),
  },
  invalid_cursor: {
    status: 400,
    ...invalid("query.after", "not a cursor this server handed out (next_cursor)"),
  },
  invalid_annotation: {
    status: 400,
    ...invalid(
      "body.empty",
      'required: an annotation with neither labels nor shapes must say "empty": true',
    ),
  },
  claim_required: {
    status: 400,
    ...invalid("body.claim_id", "required: claim the image first (claimNextImage)"),
  },
  unauthorized: { status: 401, code: "unauthorized", message: "a bearer token is required" },
  invalid_token: { status: 401, code: "invalid_token", message: "token expired" },
  invalid_api_key: { status: 401, code: "invalid_api_key", message: "invalid API key" },
  url_token_expired: {
    status: 401,
    code: "token_expired",
    message: "the URL's token has expired: ask for a new URL",
  },
  metrics_token: {
    status: 401,
    code: "unauthorized",
    message: "metrics need `Authorization: Bearer <METRICS_TOKEN>`",
  },
  not_own_key: {
    status: 403,
    code: "forbidden",
    message: "only admins may rotate another user's key",
  },
  url_token_invalid: {
    status: 403,
    code: "invalid_token",
    message: "the URL's token is not valid for this URL",
  },
  forbidden: {
    status: 403,
    code: "forbidden",
    message: "the annotator role may not do this (allowed: admin, reviewer, machine)",
  },
  claim_not_yours: {
    status: 403,
    code: "claim_not_yours",
    message: "claim 7 is held by another user",
  },
  review_not_yours: {
    status: 403,
    code: "review_not_yours",
    message: "review 9 is held by another reviewer",
  },
  annotation_not_yours: {
    status: 403,
    code: "annotation_not_yours",
    message: "annotation 12 is another user's: only its author may amend it",
  },
  dataset_not_found: { status: 404, code: "not_found", message: "dataset 42 not found" },
  review_not_found: { status: 404, code: "not_found", message: "review 9 not found" },
  annotation_not_found: { status: 404, code: "not_found", message: "annotation 12 not found" },
  image_not_found: { status: 404, code: "not_found", message: "image 42 not found" },
  claim_not_found: { status: 404, code: "not_found", message: "claim 7 not found" },
  user_not_found: { status: 404, code: "not_found", message: "user 5 not found" },
  media_unavailable: {
    status: 404,
    code: "media_unavailable",
    message: "file:// is not served: MEDIA_LOCAL_ROOT is not set",
  },
  dataset_exists: {
    status: 409,
    code: "dataset_exists",
    message: 'a dataset named "pets" already exists',
  },
  user_exists: { status: 409, code: "user_exists", message: 'a user named "alice" already exists' },
  labels_append_only: {
    status: 409,
    code: "labels_append_only",
    message: 'labels may only be appended; the new list drops "dog"',
    details: [{ path: "body.labels", message: 'missing existing label "dog"' }],
  },
  claim_expired: {
    status: 409,
    code: "claim_expired",
    message: "claim 7 expired and its image has been claimed by someone else",
  },
  claim_completed: {
    status: 409,
    code: "claim_completed",
    message: "claim 7 has already been completed",
  },
  claim_released: {
    status: 409,
    code: "claim_released",
    message: "claim 7 has already been released",
  },
  claim_mismatch: {
    status: 409,
    code: "claim_mismatch",
    message: "claim 7 is for image 41, not image 42",
  },
  review_expired: {
    status: 409,
    code: "review_expired",
    message: "review 9 expired and its image has been taken by another reviewer (or left the " +
      "review queue)",
  },
  review_completed: {
    status: 409,
    code: "review_completed",
    message: "review 9 has already been completed",
  },
  review_released: {
    status: 409,
    code: "review_released",
    message: "review 9 has already been released",
  },
  review_revoked: {
    status: 409,
    code: "review_revoked",
    message: "review 9 has already been revoked",
  },
  review_mismatch: {
    status: 409,
    code: "review_mismatch",
    message: "review 9 is for image 41, not image 42",
  },
  own_annotation: {
    status: 409,
    code: "own_annotation",
    message: "you annotated image 42: a reviewer never reviews their own work",
  },
  annotation_not_current: {
    status: 409,
    code: "annotation_not_current",
    message: "annotation 12 is superseded: only a submitted annotation can be amended",
  },
  image_in_review: {
    status: 409,
    code: "image_in_review",
    message: "image 42 is being reviewed (or was accepted): it can no longer be amended",
  },
  image_changed: {
    status: 409,
    code: "conflict",
    message: "image 42 changed meanwhile; retry",
  },
  image_deleted: {
    status: 409,
    code: "conflict",
    message: "a referenced resource does not exist",
  },
  user_disabled: { status: 409, code: "user_disabled", message: "user 5 is disabled" },
  external_user: {
    status: 409,
    code: "external_user",
    message: "user 5 signs in through the identity provider; only an admin can give it an API " +
      "key",
  },
  cannot_disable_self: {
    status: 409,
    code: "cannot_disable_self",
    message: "an admin cannot disable itself",
  },
  payload_too_large: {
    status: 413,
    code: "payload_too_large",
    message: "the request body exceeds 33554432 bytes",
  },
  token_body_too_large: {
    status: 413,
    code: "payload_too_large",
    message: "the request body exceeds 65536 bytes",
  },
  unsupported_media_type: {
    status: 415,
    code: "unsupported_media_type",
    message: "Unsupported Media Type",
  },
  unknown_label: {
    status: 422,
    code: "unknown_label",
    message: 'body.labels.0: "horse" is not a dataset label',
    details: [{ path: "body.labels.0", message: '"horse" is not a dataset label' }],
  },
  out_of_bounds: {
    status: 422,
    code: "out_of_bounds",
    message: "body.shapes.0: lies outside the 640x480 image",
    details: [{ path: "body.shapes.0", message: "lies outside the 640x480 image" }],
  },
  unavailable: {
    status: 503,
    code: "unavailable",
    message: "the database is unavailable; try again",
  },
  timeout: { status: 503, code: "timeout", message: "the request took longer than 30000 ms" },
  busy: {
    status: 503,
    code: "busy",
    message: "the request conflicted with another; try again",
  },
  not_ready: { status: 503, code: "not_ready", message: "database unavailable" },
} as const satisfies Record<string, ErrorExample>;

export type ErrorExampleName = keyof typeof EXAMPLES;

/** The examples a bare status stands for, when the route names none of that status. */
const DEFAULTS: Record<ErrorStatus, ErrorExampleName[]> = {
  400: ["invalid_body", "malformed_json"],
  401: ["unauthorized", "invalid_token"],
  403: ["forbidden"],
  404: ["image_not_found"],
  409: ["image_changed"],
  413: ["payload_too_large"],
  415: ["unsupported_media_type"],
  422: ["unknown_label", "out_of_bounds"],
  503: ["unavailable", "timeout", "busy"],
};

type StatusOf<I> = I extends ErrorStatus ? I
  : I extends ErrorExampleName ? (typeof EXAMPLES)[I]["status"]
  : never;

/**
 * `responses` entries for the errors an operation can answer, all with the one error shape and
 * each status with its own examples. Give a status (its DEFAULTS examples) or the names of the
 * examples the operation answers (their statuses). 503 is always among them, with its three
 * codes: any operation can time out or find the database unavailable.
 */
export function errors<const I extends readonly (ErrorStatus | ErrorExampleName)[]>(
  ...items: I
) {
  const named = new Map<ErrorStatus, ErrorExampleName[]>();
  for (const item of [...items, 503 as const]) {
    if (typeof item === "number") {
      if (!named.has(item)) named.set(item, []);
    } else {
      const status = EXAMPLES[item as ErrorExampleName].status;
      named.set(status, [...(named.get(status) ?? []), item]);
    }
  }
  const statuses = [...named.keys()].sort((a, b) => a - b);
  return Object.fromEntries(statuses.map((status) => {
    const names = named.get(status)!.length ? named.get(status)! : DEFAULTS[status];
    const examples = Object.fromEntries(names.map((name) => {
      const { status: _, code, message, ...rest } = EXAMPLES[name] as ErrorExample;
      return [name, { summary: code, value: { error: { code, message, ...rest } } }];
    }));
    return [status, {
      description: ERROR_DESCRIPTIONS[status],
      content: { "application/json": { schema: ErrorSchema, examples } },
    }];
  })) as Record<
    StatusOf<I[number]> | 503,
    {
      description: string;
      content: {
        "application/json": {
          schema: typeof ErrorSchema;
          examples: Record<string, { summary: string; value: unknown }>;
        };
      };
    }
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
