/** Typed functions for the statements in this folder: one per file. */
import { exec, type Handle, many, one, sqlFile } from "../../lib/db/query.ts";

const SCHEMA_MIGRATIONS_EXISTS = sqlFile("schema/schema_migrations_exists");
const LIST_APPLIED_MIGRATIONS = sqlFile("schema/list_applied_migrations");
const LOCK_MIGRATIONS = sqlFile("schema/lock_migrations");
const UNLOCK_MIGRATIONS = sqlFile("schema/unlock_migrations");

/** Applied dbmate versions; empty before the first migration. */
export async function listAppliedMigrations(db: Handle): Promise<string[]> {
  const found = await one<{ exists: boolean }>(db, SCHEMA_MIGRATIONS_EXISTS, []);
  if (!found?.exists) return [];
  const rows = await many<{ version: string }>(db, LIST_APPLIED_MIGRATIONS, []);
  return rows.map((r) => r.version);
}

/** Session lock: `db` must be one reserved connection, released after `unlockMigrations`. */
export async function lockMigrations(db: Handle): Promise<void> {
  await exec(db, LOCK_MIGRATIONS, []);
}

export async function unlockMigrations(db: Handle): Promise<void> {
  await exec(db, UNLOCK_MIGRATIONS, []);
}
