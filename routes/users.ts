/** User management (admins), and key rotation (admins, or a user for itself). */
import { createRoute, z } from "@hono/zod-openapi";
import type { Auth } from "../lib/auth/tokens.ts";
import { errors, jsonBody, jsonResponse } from "../lib/http/openapi.ts";
import { createRouter } from "../lib/http/router.ts";
import { secured } from "../lib/http/security.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import * as ops from "../operations/users.ts";
import { idParam } from "../schemas/common.ts";
import { ApiKey, CreateUser, User, userJson } from "../schemas/users.ts";
import * as q from "../sql/users/queries.ts";

const userParams = z.object({ userId: idParam("userId") });

const createUserRoute = createRoute({
  method: "post",
  path: "/users",
  operationId: "createUser",
  tags: ["users"],
  summary: "Create a user and its API key",
  ...secured("admin"),
  request: {
    body: jsonBody(CreateUser),
  },
  responses: {
    201: jsonResponse(z.object({ user: User, api_key: ApiKey }), "The user and its API key"),
    ...errors(400, 401, 403, "user_exists", 413, 415),
  },
});

const listUsersRoute = createRoute({
  method: "get",
  path: "/users",
  operationId: "listUsers",
  tags: ["users"],
  summary: "List users",
  ...secured("admin"),
  responses: {
    200: jsonResponse(z.object({ items: z.array(User) }), "All users, oldest first"),
    ...errors(401, 403),
  },
});

const disableUserRoute = createRoute({
  method: "delete",
  path: "/users/{userId}",
  operationId: "disableUser",
  tags: ["users"],
  summary: "Disable a user: its key and tokens stop working",
  ...secured("admin"),
  request: { params: userParams },
  responses: {
    204: { description: "Disabled" },
    ...errors("invalid_user_id", 401, 403, "user_not_found", "cannot_disable_self"),
  },
});

const rotateApiKeyRoute = createRoute({
  method: "post",
  path: "/users/{userId}/api-key",
  operationId: "rotateApiKey",
  tags: ["users"],
  summary: "Replace a user's API key (admins, or the user itself)",
  description: "A non-admin may rotate only its own key. An identity-provider user cannot mint " +
    "a key for itself (409 `external_user`): it would outlive revocation at the provider; an " +
    "admin can give it one.",
  ...secured("admin", "reviewer", "annotator", "machine"),
  request: { params: userParams },
  responses: {
    200: jsonResponse(z.object({ api_key: ApiKey }), "The new key; the old one stops working"),
    ...errors(
      "invalid_user_id",
      401,
      "not_own_key",
      "user_not_found",
      "user_disabled",
      "external_user",
    ),
  },
});

export function usersRouter(deps: Deps, auth: Auth) {
  const { db } = deps;
  return createRouter()
    .openapi(createUserRoute, async (c) => {
      const { name, role } = c.req.valid("json");
      const { user, apiKey } = await ops.createUser(db, name, role);
      return c.json({ user: userJson(user), api_key: apiKey }, 201);
    })
    .openapi(listUsersRoute, async (c) => {
      return c.json({ items: (await q.listUsers(db)).map(userJson) }, 200);
    })
    .openapi(disableUserRoute, async (c) => {
      const { userId } = c.req.valid("param");
      await ops.disableUser(db, auth, userId, c.get("principal"));
      return c.body(null, 204);
    })
    .openapi(rotateApiKeyRoute, async (c) => {
      const { userId } = c.req.valid("param");
      return c.json({ api_key: await ops.rotateApiKey(db, userId, c.get("principal")) }, 200);
    });
}
