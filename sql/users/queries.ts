/** Typed functions for the statements in this folder: one per file. */
import { type Handle, many, one, sqlFile } from "../../lib/db/query.ts";

export type Role = "admin" | "annotator" | "machine";

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

const CREATE_USER = sqlFile("users/create_user");
const FIND_USER_BY_API_KEY = sqlFile("users/find_user_by_api_key");
const GET_USER = sqlFile("users/get_user");
const LIST_USERS = sqlFile("users/list_users");
const DISABLE_USER = sqlFile("users/disable_user");
const SET_API_KEY = sqlFile("users/set_api_key");
const ENSURE_ADMIN = sqlFile("users/ensure_admin");
const UPSERT_EXTERNAL_USER = sqlFile("users/upsert_external_user");
const ANY_USER_EXISTS = sqlFile("users/any_user_exists");

/** `null` when the name is taken. */
export function createUser(
  db: Handle,
  u: { name: string; role: Role; apiKeyHash: Uint8Array },
): Promise<User | null> {
  return one<User>(db, CREATE_USER, [u.name, u.role, u.apiKeyHash]);
}

export function findUserByApiKey(db: Handle, hash: Uint8Array): Promise<Principal | null> {
  return one<Principal>(db, FIND_USER_BY_API_KEY, [hash]);
}

/** `external`: an identity-provider user. */
export function getUser(db: Handle, id: string): Promise<(User & { external: boolean }) | null> {
  return one<User & { external: boolean }>(db, GET_USER, [id]);
}

export function listUsers(db: Handle): Promise<User[]> {
  return many<User>(db, LIST_USERS, []);
}

export function disableUser(db: Handle, id: string): Promise<User | null> {
  return one<User>(db, DISABLE_USER, [id]);
}

/**
 * `false` when the user is missing or disabled, or is an identity-provider user and
 * `byAdmin` is false.
 */
export async function setApiKey(
  db: Handle,
  id: string,
  hash: Uint8Array,
  byAdmin: boolean,
): Promise<boolean> {
  return (await one(db, SET_API_KEY, [id, hash, byAdmin])) !== null;
}

/** `key_moved_from`: the users that held the key before (it is taken from them). */
export async function ensureAdmin(
  db: Handle,
  name: string,
  hash: Uint8Array,
): Promise<User & { key_moved_from: string[] }> {
  return (await one<User & { key_moved_from: string[] }>(db, ENSURE_ADMIN, [name, hash]))!;
}

/** `preferred` is the new user's name unless another user has it; then `fallback`. */
export async function upsertExternalUser(
  db: Handle,
  u: { preferred: string; fallback: string; role: Role; subject: string },
): Promise<Principal> {
  return (await one<Principal>(db, UPSERT_EXTERNAL_USER, [
    u.preferred,
    u.role,
    u.subject,
    u.fallback,
  ]))!;
}

export async function anyUserExists(db: Handle): Promise<boolean> {
  return (await one<{ exists: boolean }>(db, ANY_USER_EXISTS, []))!.exists;
}
