/** User management (admins), and key rotation (admins, or a user for itself). */
import { createRoute, z } from "@hono/zod-openapi";
import {
  type Auth,
  EXTERNAL_NAME_PREFIX,
  hashApiKey,
  isReservedUserName,
  newApiKey,
  secured,
} from "../lib/auth/tokens.ts";
import { ApiError, notFound } from "../lib/http/errors.ts";
import { createRouter, type Deps } from "../lib/http/router.ts";
import {
  errors,
  Id,
  idParam,
  jsonBody,
  jsonResponse,
  Name,
  Timestamp,
} from "../lib/http/openapi.ts";
import * as q from "../sql/users/queries.ts";
import { RoleSchema } from "./auth.ts";

const User = z.object({
  id: Id,
  name: z.string(),
  role: RoleSchema,
  created_at: Timestamp,
  disabled_at: Timestamp.nullable(),
}).openapi("User");

const ApiKey = z.string().openapi({
  description: "Shown once: only a hash is stored",
  example: "ak_3q2-7wQzYk8…",
});

const userParams = z.object({ userId: idParam("userId") });

const NewUserName = Name(200).refine(
  (name) => !isReservedUserName(name),
  `must not start with "${EXTERNAL_NAME_PREFIX}": that prefix names identity-provider users`,
);

const createUserRoute = createRoute({
  method: "post",
  path: "/users",
  operationId: "createUser",
  tags: ["users"],
  summary: "Create a user and its API key",
  ...secured("admin"),
  request: {
    body: jsonBody(z.strictObject({ name: NewUserName, role: RoleSchema }).openapi("CreateUser")),
  },
  responses: {
    201: jsonResponse(z.object({ user: User, api_key: ApiKey }), "The user and its API key"),
    ...errors(400, 401, 403, 409, 413, 415),
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
  responses: { 204: { description: "Disabled" }, ...errors(400, 401, 403, 404, 409) },
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
  ...secured("admin", "annotator", "machine"),
  request: { params: userParams },
  responses: {
    200: jsonResponse(z.object({ api_key: ApiKey }), "The new key; the old one stops working"),
    ...errors(400, 401, 403, 404, 409),
  },
});

function userJson(u: q.User): z.infer<typeof User> {
  return {
    id: u.id,
    name: u.name,
    role: u.role,
    created_at: u.created_at.toISOString(),
    disabled_at: u.disabled_at?.toISOString() ?? null,
  };
}

export function usersRouter(deps: Deps, auth: Auth) {
  const { db } = deps;
  return createRouter()
    .openapi(createUserRoute, async (c) => {
      const { name, role } = c.req.valid("json");
      const apiKey = newApiKey();
      const user = await q.createUser(db, { name, role, apiKeyHash: await hashApiKey(apiKey) });
      if (!user) throw new ApiError(409, "user_exists", `a user named "${name}" already exists`);
      return c.json({ user: userJson(user), api_key: apiKey }, 201);
    })
    .openapi(listUsersRoute, async (c) => {
      return c.json({ items: (await q.listUsers(db)).map(userJson) }, 200);
    })
    .openapi(disableUserRoute, async (c) => {
      const { userId } = c.req.valid("param");
      if (userId === c.get("principal").id) {
        throw new ApiError(409, "cannot_disable_self", "an admin cannot disable itself");
      }
      if (!(await q.disableUser(db, userId))) throw notFound(`user ${userId}`);
      auth.forget(userId);
      return c.body(null, 204);
    })
    .openapi(rotateApiKeyRoute, async (c) => {
      const { userId } = c.req.valid("param");
      const caller = c.get("principal");
      if (caller.role !== "admin" && caller.id !== userId) {
        throw new ApiError(403, "forbidden", "only admins may rotate another user's key");
      }
      const apiKey = newApiKey();
      const byAdmin = caller.role === "admin";
      if (!(await q.setApiKey(db, userId, await hashApiKey(apiKey), byAdmin))) {
        const user = await q.getUser(db, userId);
        if (!user) throw notFound(`user ${userId}`);
        if (user.disabled_at) {
          throw new ApiError(409, "user_disabled", `user ${userId} is disabled`);
        }
        // An identity-provider user: a key of its own would survive revocation at the provider.
        throw new ApiError(
          409,
          "external_user",
          `user ${userId} signs in through the identity provider; only an admin can give it an ` +
            `API key`,
        );
      }
      return c.json({ api_key: apiKey }, 200);
    });
}
