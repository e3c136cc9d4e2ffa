/**
 * Authentication and role checks, declared on each route with `secured(...)` (or `open()` for the
 * one anonymous operation, or `securedOrUrlToken(...)` for one an `<img src>` may load), so the
 * spec and the server say the same thing; createApp refuses a route under /api/v1 that declares
 * none of them.
 */
import type { Context, MiddlewareHandler } from "hono";
import type { Role } from "../../sql/users/queries.ts";
import { rawPath } from "../auth/url_tokens.ts";
import { ApiError } from "./errors.ts";
import type { AppEnv } from "./router.ts";

/**
 * Requires `Authorization: Bearer <token>` of one of `roles` (401 without a valid token, 403 for
 * another role) and sets the `principal` variable.
 */
async function authenticate(c: Context<AppEnv>, roles: readonly Role[]): Promise<void> {
  const header = c.req.header("authorization");
  const m = header ? /^Bearer[ ]+(\S+)\s*$/i.exec(header) : null;
  if (!m) {
    c.header("www-authenticate", 'Bearer realm="annotation-server"');
    throw new ApiError(
      401,
      "unauthorized",
      header ? "the Authorization header must be `Bearer <token>`" : "a bearer token is required",
    );
  }
  const p = await c.var.auth.verify(m[1]);
  c.set("principal", p);
  if (!roles.includes(p.role)) {
    throw new ApiError(
      403,
      "forbidden",
      `the ${p.role} role may not do this (allowed: ${roles.join(", ")})`,
    );
  }
}

/**
 * The caller checked, then, once known, a large body waits its turn (one at a time,
 * lib/http/middleware.ts). One middleware, not one for each: as three they cost 4.5 µs a
 * request (docs/decisions/0021-what-the-request-pipeline-costs.md).
 */
function guard(roles: readonly Role[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    await authenticate(c, roles);
    await c.var.bodyBudget.admit(c, next);
  };
}

/**
 * Spread into `createRoute({...})`: declares the Bearer scheme and the roles in the spec
 * (`x-roles`), and enforces them: 401 without a valid token, 403 for another role.
 */
export function secured<const R extends Role[]>(...roles: R) {
  return {
    security: [{ Bearer: [] }],
    middleware: [guard(roles)],
    "x-roles": roles,
  };
}

/**
 * A bearer token, or else a `token` query parameter that the server signed for this very path
 * (lib/auth/url_tokens.ts): 401 when it has expired, 403 when it was altered or made for another
 * path. The token stands for whoever the server handed the URL to, so it carries no role.
 */
function authenticateOrUrlToken(roles: readonly Role[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const token = c.req.query("token");
    if (token === undefined || c.req.header("authorization")) {
      await authenticate(c, roles);
      await next();
      return;
    }
    const check = c.var.urlTokens.check(rawPath(c.req.url), token);
    if (check === "expired") {
      throw new ApiError(401, "token_expired", "the URL's token has expired: ask for a new URL");
    }
    if (check !== "ok") {
      throw new ApiError(403, "invalid_token", "the URL's token is not valid for this URL");
    }
    await next();
  };
}

/**
 * Spread into `createRoute({...})` of a GET a browser may load without a header: `secured(...)`,
 * or the `token` query parameter of a URL the server handed out (the `UrlToken` scheme).
 */
export function securedOrUrlToken<const R extends Role[]>(...roles: R) {
  return {
    security: [{ Bearer: [] }, { UrlToken: [] }] as Record<string, string[]>[],
    middleware: [authenticateOrUrlToken(roles)],
    "x-roles": roles,
  };
}

/** Spread into `createRoute({...})` of an operation anyone may call: no credentials. */
export function open() {
  return { security: [] as { Bearer: string[] }[] };
}
