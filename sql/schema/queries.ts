/** Typed functions for the statements in this folder: one per file. */
import { exec, many, one } from "../../lib/db/query.ts";
import type { Handle } from "../../lib/db/pool.ts";
import { statement } from "../../lib/db/statement.ts";

type None = Record<never, never>;

const SCHEMA_MIGRATIONS_EXISTS = statement<None, { exists: boolean }>(
  "schema/schema_migrations_exists",
);
const LIST_APPLIED_MIGRATIONS = statement<None, { version: string }>(
  "schema/list_applied_migrations",
);
const LOCK_MIGRATIONS = statement<None, never>("schema/lock_migrations");
const UNLOCK_MIGRATIONS = statement<None, never>("schema/unlock_migrations");

/** Applied dbmate versions; empty before the first migration. */
export async function listAppliedMigrations(db: Handle): Promise<string[]> {
  const found = await one(db, SCHEMA_MIGRATIONS_EXISTS, {});
  if (!found?.exists) return [];
  const rows = await many(db, LIST_APPLIED_MIGRATIONS, {});
  return rows.map((r) => r.version);
}

/** Session lock: `db` must be one reserved connection, released after `unlockMigrations`. */
export async function lockMigrations(db: Handle): Promise<void> {
  await exec(db, LOCK_MIGRATIONS, {});
}

export async function unlockMigrations(db: Handle): Promise<void> {
  await exec(db, UNLOCK_MIGRATIONS, {});
}
