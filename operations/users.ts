/** Users and their API keys. */
import { hashApiKey, newApiKey } from "../lib/auth/keys.ts";
import type { Auth } from "../lib/auth/tokens.ts";
import type { Db } from "../lib/db/query.ts";
import { ApiError, notFound } from "../lib/http/errors.ts";
import * as q from "../sql/users/queries.ts";

/** A new user and its API key (shown once: only its hash is stored); 409 for a taken name. */
export async function createUser(
  db: Db,
  name: string,
  role: q.Role,
): Promise<{ user: q.User; apiKey: string }> {
  const apiKey = newApiKey();
  const user = await q.createUser(db, { name, role, api_key_hash: await hashApiKey(apiKey) });
  if (!user) throw new ApiError(409, "user_exists", `a user named "${name}" already exists`);
  return { user, apiKey };
}

/** Disables the user (its key and tokens stop working); an admin cannot disable itself. */
export async function disableUser(
  db: Db,
  auth: Auth,
  userId: string,
  caller: q.Principal,
): Promise<void> {
  if (userId === caller.id) {
    throw new ApiError(409, "cannot_disable_self", "an admin cannot disable itself");
  }
  if (!(await q.disableUser(db, { id: userId }))) throw notFound(`user ${userId}`);
  auth.forget(userId);
}

/**
 * A new API key for the user; the old one stops working. A non-admin may rotate only its own. An
 * identity-provider user cannot mint a key for itself: it would outlive revocation at the
 * provider.
 */
export async function rotateApiKey(db: Db, userId: string, caller: q.Principal): Promise<string> {
  if (caller.role !== "admin" && caller.id !== userId) {
    throw new ApiError(403, "forbidden", "only admins may rotate another user's key");
  }
  const apiKey = newApiKey();
  const byAdmin = caller.role === "admin";
  const hash = await hashApiKey(apiKey);
  if (await q.setApiKey(db, { id: userId, api_key_hash: hash, by_admin: byAdmin })) return apiKey;
  const user = await q.getUser(db, { id: userId });
  if (!user) throw notFound(`user ${userId}`);
  if (user.disabled_at) throw new ApiError(409, "user_disabled", `user ${userId} is disabled`);
  throw new ApiError(
    409,
    "external_user",
    `user ${userId} signs in through the identity provider; only an admin can give it an API key`,
  );
}
