/**
 * One error shape for every failure: `{"error": {"code", "message", "details"?}}`.
 * Expected failures throw `ApiError`; `onError` turns everything else into that shape too, and
 * no stack trace ever reaches a client.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";
import { isPgError } from "../db/pool.ts";
import type { Logger } from "../runtime/log.ts";

export interface ErrorDetail {
  path: string;
  message: string;
}

export interface ErrorBody {
  error: { code: string; message: string; details?: ErrorDetail[] };
}

export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly details?: ErrorDetail[],
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export const notFound = (what: string) => new ApiError(404, "not_found", `${what} not found`);

/**
 * A request rule JSON Schema cannot state (it depends on the caller's role, or on what the
 * server issued): a 400 like any validation failure.
 */
export function invalidField(path: string, message: string): ApiError {
  return new ApiError(400, "validation_failed", `${path}: ${message}`, [{ path, message }]);
}

export function errorBody(code: string, message: string, details?: ErrorDetail[]): ErrorBody {
  return { error: details?.length ? { code, message, details } : { code, message } };
}

const LOCATION: Record<string, string> = {
  json: "body",
  query: "query",
  param: "path",
  header: "header",
};

/** Issues reported per failed validation at most (the first ones, in the input's order). */
export const MAX_ISSUES = 50;

/** Zod issues as `{path, message}`, prefixed with where in the request they are. */
export function issuesToDetails(error: z.ZodError, target: string): ErrorDetail[] {
  const where = LOCATION[target] ?? target;
  return error.issues.slice(0, MAX_ISSUES).map((issue) => ({
    path: [where, ...issue.path.map(String)].join("."),
    message: issue.message,
  }));
}

/** The one 400 for a failed validation of `target` (json, query, param, header). */
export function validationFailed(error: z.ZodError, target: string): ApiError {
  const details = issuesToDetails(error, target);
  const first = details[0];
  return new ApiError(
    400,
    "validation_failed",
    first ? `${first.path}: ${first.message}` : "the request is invalid",
    details,
  );
}

/** The router's `defaultHook`: every validation failure gets the same 400. */
export function validationHook(
  result: { success: boolean; error?: z.ZodError; target: string },
  c: Context,
) {
  if (!result.success && result.error) {
    const e = validationFailed(result.error, result.target);
    return c.json(errorBody(e.code, e.message, e.details), 400);
  }
}

const HTTP_CODES: Partial<Record<number, string>> = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  413: "payload_too_large",
  415: "unsupported_media_type",
  503: "unavailable",
};

/**
 * PostgreSQL errors that bad input can still cause (a last line of defence behind validation):
 * they are the client's fault, so they get a 4xx, never a 500.
 */
function fromPg(e: { code: string; constraint_name?: string }): ApiError | null {
  switch (e.code) {
    case "23505":
      return new ApiError(409, "conflict", "a resource with these values already exists");
    case "23503":
      return new ApiError(409, "conflict", "a referenced resource does not exist");
    case "22P02": // invalid_text_representation
    case "22003": // numeric_value_out_of_range
    case "22021": // character_not_in_repertoire (e.g. NUL bytes)
    case "22P05": // untranslatable_character (\u0000 in jsonb)
    case "22001": // string_data_right_truncation
    case "23514": // check_violation
      return new ApiError(400, "invalid_value", "a value in the request is not acceptable");
    case "54000": // program_limit_exceeded (e.g. an index row too large)
      return new ApiError(413, "payload_too_large", "a value in the request is too large");
    case "57014": // query_canceled (statement timeout)
      return new ApiError(503, "timeout", "the database took too long to answer; try again");
    case "40001": // serialization_failure
    case "40P01": // deadlock_detected
      return new ApiError(503, "busy", "the request conflicted with another; try again");
    case "53300": // too_many_connections
    case "57P01": // admin_shutdown
    case "57P02": // crash_shutdown
    case "57P03": // cannot_connect_now
      return new ApiError(503, "unavailable", "the database is unavailable; try again");
  }
  // Class 08: connection exceptions (connection_failure, ...).
  if (e.code.startsWith("08")) {
    return new ApiError(503, "unavailable", "the database is unavailable; try again");
  }
  return null;
}

/** postgres.js's own connection errors, and the socket errors a lost database gives. */
const CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  // A database that stops or crashes resets open sockets under requests in flight.
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTCONN",
  "EAI_AGAIN",
  "ENOTFOUND",
]);

/** Connection-level failures (no SQLSTATE): the database is unreachable. */
function isConnectionError(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return typeof code === "string" && CONNECTION_CODES.has(code);
}

/** Maps any thrown value to the status and body the client gets. */
export function toErrorResponse(err: unknown): { status: ContentfulStatusCode; body: ErrorBody } {
  if (err instanceof ApiError) {
    return { status: err.status, body: errorBody(err.code, err.message, err.details) };
  }
  if (err instanceof HTTPException) {
    const status = err.status as ContentfulStatusCode;
    return {
      status,
      body: errorBody(HTTP_CODES[status] ?? "error", err.message || "request failed"),
    };
  }
  if (isPgError(err)) {
    const mapped = fromPg(err);
    if (mapped) return toErrorResponse(mapped);
  }
  if (isConnectionError(err)) {
    return toErrorResponse(
      new ApiError(503, "unavailable", "the database is unavailable; try again"),
    );
  }
  return { status: 500, body: errorBody("internal", "internal server error") };
}

/**
 * Logs server-side failures. A 503 is an expected condition (a timeout, a busy or unavailable
 * database): one warn line with its code and message, no stack, so an outage does not flood the
 * log with traces of the same known path. Anything else at 5xx is a bug: error, with the stack.
 */
export function makeOnError(log: Logger) {
  return (err: Error, c: Context) => {
    const { status, body } = toErrorResponse(err);
    if (status === 503) {
      if (log.enabled("warn")) {
        log.warn("request failed", {
          method: c.req.method,
          path: c.req.path,
          status,
          code: body.error.code,
          error: String(err?.message ?? err),
        });
      }
    } else if (status >= 500) {
      log.error("request failed", {
        method: c.req.method,
        path: c.req.path,
        status,
        error: String(err?.stack ?? err),
      });
    }
    return c.json(body, status);
  };
}
