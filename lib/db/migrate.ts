/**
 * Migrations are dbmate plain-SQL files in `db/migrations/`. This module runs dbmate (the npm
 * package, under Deno) and answers "is anything pending?" for readiness without spawning it.
 */
import {
  listAppliedMigrations,
  lockMigrations,
  unlockMigrations,
} from "../../sql/schema/queries.ts";
import type { Db } from "./query.ts";

export const MIGRATIONS_DIR = new URL("../../db/migrations/", import.meta.url);
/** The dbmate the project runs (deno run npm:…); the Docker image installs the same. */
export const DBMATE = "npm:dbmate@2.24.0";
/**
 * dbmate runs with this project's deno.json, so its lock file and node_modules (`deno install`)
 * resolve it wherever the caller's working directory is: without them, deno asks the registry
 * about every platform package dbmate lists, which fails offline.
 */
const CONFIG = new URL("../../deno.json", import.meta.url);

/** dbmate speaks lib/pq, which wants an explicit sslmode; postgres.js defaults to no TLS. */
export function dbmateUrl(url: string): string {
  const u = new URL(url);
  if (!u.searchParams.has("sslmode")) u.searchParams.set("sslmode", "disable");
  return u.toString();
}

let onDisk: Promise<string[]> | undefined;

/** Versions of the migration files, read once per process. */
export function migrationVersions(): Promise<string[]> {
  return onDisk ??= readVersions();
}

async function readVersions(): Promise<string[]> {
  const versions: string[] = [];
  for await (const entry of Deno.readDir(MIGRATIONS_DIR)) {
    const m = /^(\d+)_.*\.sql$/.exec(entry.name);
    if (entry.isFile && m) versions.push(m[1]);
  }
  return versions.sort();
}

/** Migration versions present on disk but not applied to the database. */
export async function pendingMigrations(db: Db): Promise<string[]> {
  const applied = new Set(await listAppliedMigrations(db));
  return (await migrationVersions()).filter((v) => !applied.has(v));
}

export interface DbmateResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The environment variable that hands dbmate its URL (`--env`): never the command line, which
 * any user on the host can read (`ps`, /proc/<pid>/cmdline); a process's environment is visible
 * only to its own user. A name of its own, so neither an inherited DATABASE_URL nor one in a
 * `.env` file (which dbmate reads) can stand in for it.
 */
export const DBMATE_URL_VARIABLE = "DBMATE_DATABASE_URL";

/** The `deno` command line and the extra environment that run `dbmate <args>` against `url`. */
export function dbmateCommand(
  url: string,
  args: string[],
): { args: string[]; env: Record<string, string> } {
  return {
    args: [
      "run",
      "--allow-all",
      "--quiet",
      "--config",
      decodeURIComponent(CONFIG.pathname),
      DBMATE,
      "--env",
      DBMATE_URL_VARIABLE,
      "--migrations-dir",
      decodeURIComponent(MIGRATIONS_DIR.pathname),
      // A dump needs pg_dump of at least the server's major version, which a deploy may not
      // have: db/schema.sql is written on purpose, by deno task db:dump.
      "--no-dump-schema",
      ...args,
    ],
    env: { [DBMATE_URL_VARIABLE]: dbmateUrl(url) },
  };
}

/** Runs `dbmate <args>` against `url` with this project's folders (and `env` added to its own). */
export async function dbmate(
  url: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<DbmateResult> {
  const command = dbmateCommand(url, args);
  const out = await new Deno.Command(Deno.execPath(), {
    args: command.args,
    env: { ...env, ...command.env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * Applies pending migrations. Holds a session advisory lock while dbmate runs, so two processes
 * (two replicas starting at once) never apply the same migration concurrently: the second waits,
 * then finds nothing pending.
 */
export async function migrate(db: Db, url: string): Promise<DbmateResult> {
  const conn = await db.reserve();
  try {
    await lockMigrations(conn);
    try {
      const result = await dbmate(url, ["up"]);
      if (result.code !== 0) {
        throw new Error(
          `dbmate up failed (exit ${result.code}):\n${result.stderr || result.stdout}`,
        );
      }
      return result;
    } finally {
      await unlockMigrations(conn);
    }
  } finally {
    conn.release();
  }
}
