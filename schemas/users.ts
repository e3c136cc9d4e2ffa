/** Users, roles, API keys and tokens. */
import { z } from "@hono/zod-openapi";
import { EXTERNAL_NAME_PREFIX, isReservedUserName } from "../lib/auth/keys.ts";
import { type Principal, ROLES, type User as UserRow } from "../sql/users/queries.ts";
import { Id, Name, Timestamp } from "./common.ts";

export const RoleSchema = z.enum(ROLES).openapi("Role");

export const Me = z.object({ id: Id, name: z.string(), role: RoleSchema }).openapi("Me");

export const Token = z.object({
  access_token: z.string(),
  token_type: z.literal("Bearer"),
  expires_in: z.number().int().openapi({ description: "Seconds until the token expires" }),
}).openapi("Token");

export const TokenRequest = z.strictObject({
  // Any string: one that cannot be a key (empty, too long, NUL) gets the unknown key's 401.
  api_key: z.string().openapi({ example: "ak_W-R0jQCnyIPYTuAD96h1j3NXhRQ-4NRWkzFTdJ2MEWU" }),
}).openapi("TokenRequest");

export const User = z.object({
  id: Id,
  name: z.string(),
  role: RoleSchema,
  created_at: Timestamp,
  disabled_at: Timestamp.nullable(),
}).openapi("User");

export const ApiKey = z.string().openapi({
  description: "Shown once: only a hash is stored",
  example: "ak_3q2-7wQzYk8…",
});

export const NewUserName = Name(200).refine(
  (name) => !isReservedUserName(name),
  `must not start with "${EXTERNAL_NAME_PREFIX}": that prefix names identity-provider users`,
).openapi({
  not: { pattern: `^${EXTERNAL_NAME_PREFIX.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}` },
  description: `Unique; must not start with "${EXTERNAL_NAME_PREFIX}" (the names of ` +
    "identity-provider users)",
});

export const CreateUser = z.strictObject({ name: NewUserName, role: RoleSchema }).openapi(
  "CreateUser",
);

export function meJson(p: Principal): z.infer<typeof Me> {
  return { id: p.id, name: p.name, role: p.role };
}

export function userJson(u: UserRow): z.infer<typeof User> {
  return {
    id: u.id,
    name: u.name,
    role: u.role,
    created_at: u.created_at.toISOString(),
    disabled_at: u.disabled_at?.toISOString() ?? null,
  };
}
