/** Typed functions for the statements in this folder: one per file. */
import { many, one } from "../../lib/db/query.ts";
import type { Handle } from "../../lib/db/pool.ts";
import { statement } from "../../lib/db/statement.ts";

/**
 * The roles, highest privilege first; the users table's CHECK lists the same. A reviewer may do
 * everything an annotator may, and review; an identity provider's token naming several roles is
 * read as the first of them here.
 */
export const ROLES = ["admin", "reviewer", "annotator", "machine"] as const;
export type Role = typeof ROLES[number];

export interface User {
  id: string;
  name: string;
  role: Role;
  created_at: Date;
  disabled_at: Date | null;
}

/** What authentication needs to know about a caller. */
export interface Principal {
  id: string;
  name: string;
  role: Role;
  disabled_at: Date | null;
}

/**
 * Who runs a statement, for may_see_dataset (db/migrations/20261206024325_dataset_membership.sql):
 * every statement that reads or writes a dataset's rows takes it, and answers for a dataset the
 * caller may not see as for one that does not exist.
 */
export interface CallerParams {
  caller_id: string;
  caller_role: Role;
}

/** The statements' caller parameters for a principal. */
export function callerParams(p: Pick<Principal, "id" | "role">): CallerParams {
  return { caller_id: p.id, caller_role: p.role };
}

type None = Record<never, never>;

export interface CreateUserParams {
  name: string;
  role: Role;
  api_key_hash: Uint8Array;
}
const CREATE_USER = statement<CreateUserParams, User>("users/create_user");

/** `null` when the name is taken. */
export function createUser(db: Handle, p: CreateUserParams): Promise<User | null> {
  return one(db, CREATE_USER, p);
}

const FIND_USER_BY_API_KEY = statement<{ api_key_hash: Uint8Array }, Principal>(
  "users/find_user_by_api_key",
);

export function findUserByApiKey(
  db: Handle,
  p: { api_key_hash: Uint8Array },
): Promise<Principal | null> {
  return one(db, FIND_USER_BY_API_KEY, p);
}

export interface UserIdParams {
  id: string;
}
/** `external`: an identity-provider user. */
export type GetUserRow = User & { external: boolean };
const GET_USER = statement<UserIdParams, GetUserRow>("users/get_user");

export function getUser(db: Handle, p: UserIdParams): Promise<GetUserRow | null> {
  return one(db, GET_USER, p);
}

const LIST_USERS = statement<None, User>("users/list_users");

export function listUsers(db: Handle): Promise<User[]> {
  return many(db, LIST_USERS, {});
}

const DISABLE_USER = statement<UserIdParams, User>("users/disable_user");

export function disableUser(db: Handle, p: UserIdParams): Promise<User | null> {
  return one(db, DISABLE_USER, p);
}

export interface SetApiKeyParams {
  id: string;
  api_key_hash: Uint8Array;
  /** The caller is an admin (only then may an identity-provider user get a key). */
  by_admin: boolean;
}
const SET_API_KEY = statement<SetApiKeyParams, { id: string }>("users/set_api_key");

/**
 * `false` when the user is missing or disabled, or is an identity-provider user and the caller
 * is not an admin.
 */
export async function setApiKey(db: Handle, p: SetApiKeyParams): Promise<boolean> {
  return (await one(db, SET_API_KEY, p)) !== null;
}

export interface EnsureAdminParams {
  name: string;
  api_key_hash: Uint8Array;
}
/** `key_moved_from`: the users that held the key before (it is taken from them). */
export type EnsureAdminRow = User & { key_moved_from: string[] };
const ENSURE_ADMIN = statement<EnsureAdminParams, EnsureAdminRow>("users/ensure_admin");

export async function ensureAdmin(db: Handle, p: EnsureAdminParams): Promise<EnsureAdminRow> {
  return (await one(db, ENSURE_ADMIN, p))!;
}

export interface UpsertExternalUserParams {
  /** The new user's name unless another user has it; then `fallback_name`. */
  name: string;
  fallback_name: string;
  role: Role;
  subject: string;
}
const UPSERT_EXTERNAL_USER = statement<UpsertExternalUserParams, Principal>(
  "users/upsert_external_user",
);

export async function upsertExternalUser(
  db: Handle,
  p: UpsertExternalUserParams,
): Promise<Principal> {
  return (await one(db, UPSERT_EXTERNAL_USER, p))!;
}

const ANY_USER_EXISTS = statement<None, { exists: boolean }>("users/any_user_exists");

export async function anyUserExists(db: Handle): Promise<boolean> {
  return (await one(db, ANY_USER_EXISTS, {}))!.exists;
}
