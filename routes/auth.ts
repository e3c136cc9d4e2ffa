/** Exchanging an API key for a token, and "who am I". */
import { createRoute, z } from "@hono/zod-openapi";
import { secured } from "../lib/auth/tokens.ts";
import type { Auth } from "../lib/auth/tokens.ts";
import { ApiError } from "../lib/http/errors.ts";
import { createRouter } from "../lib/http/router.ts";
import { errors, Id, jsonBody, jsonResponse } from "../lib/http/openapi.ts";

export const TOKEN_PATH = "/auth/token";

/** Longer strings are never looked up (keys are 46 characters; ADMIN_API_KEY may be longer). */
const MAX_API_KEY_LENGTH = 512;

export const RoleSchema = z.enum(["admin", "annotator", "machine"]).openapi("Role");

const Me = z.object({ id: Id, name: z.string(), role: RoleSchema }).openapi("Me");

const Token = z.object({
  access_token: z.string(),
  token_type: z.literal("Bearer"),
  expires_in: z.number().int().openapi({ description: "Seconds until the token expires" }),
}).openapi("Token");

const createTokenRoute = createRoute({
  method: "post",
  path: TOKEN_PATH,
  operationId: "createToken",
  tags: ["auth"],
  summary: "Exchange an API key for a bearer token (JWT)",
  request: {
    body: jsonBody(
      z.strictObject({
        // Any string: one that cannot be a key (empty, too long, NUL) gets the unknown key's 401.
        api_key: z.string().openapi({ example: "ak_W-R0jQCnyIPYTuAD96h1j3NXhRQ-4NRWkzFTdJ2MEWU" }),
      }).openapi("TokenRequest"),
    ),
  },
  responses: {
    200: jsonResponse(Token, "A bearer token"),
    ...errors(400, 401, 413, 415),
  },
});

const getMeRoute = createRoute({
  method: "get",
  path: "/me",
  operationId: "getMe",
  tags: ["auth"],
  summary: "The caller",
  ...secured("admin", "annotator", "machine"),
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
    .openapi(getMeRoute, (c) => {
      const p = c.get("principal");
      return c.json({ id: p.id, name: p.name, role: p.role }, 200);
    });
}
