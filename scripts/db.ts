/**
 * `deno task db:migrate | db:rollback | db:status | db:new <name>`: dbmate against the
 * configured database, or (outside production, with none configured) the embedded development
 * database that `deno task dev` uses, reused if it is already running.
 *
 * dbmate's own output goes to stdout; progress and errors go to stderr. Exits non-zero on failure.
 */
import { loadConfig } from "../lib/runtime/config.ts";
import { connect } from "../lib/db/pool.ts";
import { openDatabaseUrl } from "../lib/runtime/dev_database.ts";
import { cliLogger as cliLog } from "../lib/runtime/log.ts";
import { dbmate, type DbmateResult, migrate, migrationVersions } from "../lib/db/migrate.ts";
import { lockMigrations, unlockMigrations } from "../sql/schema/queries.ts";
import { main, UsageError } from "./cli.ts";

const USAGE = `usage: deno task db:migrate          apply pending migrations
       deno task db:rollback         roll back the most recent migration
       deno task db:status           list applied and pending migrations
       deno task db:new <name>       create db/migrations/<timestamp>_<name>.sql (snake_case name)`;

function print(result: DbmateResult): void {
  if (result.stdout) Deno.stdout.writeSync(new TextEncoder().encode(result.stdout));
  if (result.stderr) Deno.stderr.writeSync(new TextEncoder().encode(result.stderr));
}

function check(verb: string, result: DbmateResult): DbmateResult {
  if (result.code !== 0) {
    print(result);
    throw new Error(`dbmate ${verb} failed (exit ${result.code})`);
  }
  return result;
}

const NAME = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/;

async function newMigration(args: string[]): Promise<void> {
  if (args.length !== 1) throw new UsageError("db:new takes exactly one name");
  const [name] = args;
  if (!NAME.test(name) || name.length > 100) {
    throw new UsageError(
      `"${name}" is not a valid migration name: use snake_case (lower-case letters, digits and ` +
        `single underscores, starting with a letter, at most 100 characters), e.g. add_image_tags`,
    );
  }
  // dbmate names the file after the current UTC time; a clock behind the newest migration would
  // create one that sorts before migrations already applied elsewhere.
  const stamp = new Date().toISOString().replace(/[-:T]/g, "").slice(0, 14);
  const latest = (await migrationVersions()).at(-1);
  if (latest && stamp <= latest) {
    throw new Error(
      `the clock (${stamp}) is not after the newest migration (${latest}); fix the clock first`,
    );
  }
  // `dbmate new` only writes a file and never connects; the helper wants a URL all the same.
  print(check("new", await dbmate("postgres://unused@127.0.0.1:1/unused", ["new", name])));
}

async function withDatabase(verb: string): Promise<void> {
  const config = loadConfig({ tokens: false });
  const database = await openDatabaseUrl(config, cliLog);
  const db = connect(database.url, {
    max: 2,
    connectTimeoutSeconds: config.db.connectTimeoutSeconds,
    statementTimeoutMs: 0,
    applicationName: "annotation-server db script",
  });
  try {
    if (verb === "migrate") {
      // Advisory-locked: safe while another process (a starting server) migrates too.
      print(await migrate(db, database.url));
    } else if (verb === "rollback") {
      // The same lock, so a rollback never interleaves with someone's migrate.
      const conn = await db.reserve();
      try {
        await lockMigrations(conn);
        try {
          print(check("rollback", await dbmate(database.url, ["rollback"])));
        } finally {
          await unlockMigrations(conn);
        }
      } finally {
        conn.release();
      }
    } else {
      print(check("status", await dbmate(database.url, ["status"])));
    }
  } finally {
    await db.end({ timeout: 5 });
    await database.stop();
  }
}

async function run(args: string[]): Promise<void> {
  const [verb, ...rest] = args;
  switch (verb) {
    case "new":
      return await newMigration(rest);
    case "migrate":
    case "rollback":
    case "status":
      if (rest.length) throw new UsageError(`db:${verb} takes no arguments`);
      return await withDatabase(verb);
    default:
      throw new UsageError(verb ? `unknown command "${verb}"` : "no command given");
  }
}

if (import.meta.main) await main(run, USAGE);
