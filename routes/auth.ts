/** Exchanging an API key for a token, and "who am I". */
import { createRoute } from "@hono/zod-openapi";
import type { Auth } from "../lib/auth/tokens.ts";
import { ApiError } from "../lib/http/errors.ts";
import { limitBody } from "../lib/http/middleware.ts";
import { errors, jsonBody, jsonResponse } from "../lib/http/openapi.ts";
import { createRouter } from "../lib/http/router.ts";
import { open, secured } from "../lib/http/security.ts";
import { Me, meJson, Token, TokenRequest } from "../schemas/users.ts";

/** Longer strings are never looked up (keys are 46 characters; ADMIN_API_KEY may be longer). */
const MAX_API_KEY_LENGTH = 512;

/**
 * The largest createToken body: more than any real request, and it keeps anonymous callers away
 * from the large-body budget (the one operation without a token).
 */
const TOKEN_BODY_BYTES = 64 * 1024;

const createTokenRoute = createRoute({
  method: "post",
  path: "/auth/token",
  operationId: "createToken",
  ...open(),
  middleware: limitBody(TOKEN_BODY_BYTES),
  tags: ["auth"],
  summary: "Exchange an API key for a bearer token (JWT)",
  request: { body: jsonBody(TokenRequest) },
  responses: {
    200: jsonResponse(Token, "A bearer token"),
    ...errors(
      "invalid_token_request",
      "malformed_json",
      "invalid_api_key",
      "token_body_too_large",
      415,
    ),
  },
});

const getMeRoute = createRoute({
  method: "get",
  path: "/me",
  operationId: "getMe",
  tags: ["auth"],
  summary: "The caller",
  ...secured("admin", "reviewer", "annotator", "machine"),
  responses: { 200: jsonResponse(Me, "The caller"), ...errors(401) },
});

export function authRouter(auth: Auth) {
  return createRouter()
    .openapi(createTokenRoute, async (c) => {
      const key = c.req.valid("json").api_key;
      // A string no key can be still takes the same lookup (of a hash nothing has), so it
      // answers like an unknown key in body and in time; an overlong one is not hashed whole.
      const plausible = key.length >= 1 && key.length <= MAX_API_KEY_LENGTH;
      const user = await auth.userForApiKey(plausible ? key : "");
      // One answer for unknown, rotated, disabled and impossible keys alike.
      if (!user) throw new ApiError(401, "invalid_api_key", "invalid API key");
      return c.json(await auth.issueToken(user), 200);
    })
    .openapi(getMeRoute, (c) => c.json(meJson(c.get("principal")), 200));
}
