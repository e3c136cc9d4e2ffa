/**
 * `deno task user:create <name> <role> [--dataset <id>]...`: creates a user with a new API key in
 * the configured database, or (outside production, with none configured) the embedded development
 * database that `deno task dev` uses, reused if it is already running. Each `--dataset` makes the
 * user a member of that dataset, in the same transaction: an unknown dataset creates nothing.
 *
 * The key goes to stdout, alone on one line, so a script can capture it
 * (`KEY=$(deno task user:create labeller-1 annotator)`); everything else goes to stderr. It is
 * shown once: only its hash is stored. Exit codes: 0 created, 1 failed (e.g. the name is taken),
 * 2 wrong arguments.
 */
import {
  EXTERNAL_NAME_PREFIX,
  hashApiKey,
  isReservedUserName,
  newApiKey,
} from "../lib/auth/keys.ts";
import { loadConfig } from "../lib/runtime/config.ts";
import { connect, isPgError } from "../lib/db/pool.ts";
import { transaction } from "../lib/db/query.ts";
import { openDatabaseUrl } from "../lib/runtime/dev_database.ts";
import { cliLogger as cliLog } from "../lib/runtime/log.ts";
import { pendingMigrations } from "../lib/db/migrate.ts";
import { addDatasetMember } from "../sql/datasets/queries.ts";
import { type CallerParams, createUser, type Role, ROLES } from "../sql/users/queries.ts";
import { main, UsageError } from "./cli.ts";

const USAGE = `usage: deno task user:create <name> <role> [--dataset <id>]...

  name           unique user name (at most 200 characters, not starting with "idp:")
  role           ${ROLES.join(" | ")}
  --dataset id   make the user a member of that dataset (repeatable)

Prints the new user's API key on stdout (shown once; only its hash is stored).`;

/**
 * Whoever runs this script holds the database's credentials: it adds members as an admin would
 * (an admin sees every dataset, so the id names no user).
 */
const OPERATOR: CallerParams = { caller_id: "0", caller_role: "admin" };

/** The same limits as the createUser API route. */
const MAX_NAME = 200;

function parseArgs(args: string[]): { name: string; role: Role; datasets: string[] } {
  const positional: string[] = [];
  const datasets: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const inline = /^--dataset=(.*)$/.exec(arg);
    if (arg === "--dataset" || inline) {
      const id = inline ? inline[1] : args[++i];
      if (id === undefined) throw new UsageError("--dataset needs a dataset id");
      // As the API's ids: a decimal bigint of at most 18 digits.
      if (!/^[1-9][0-9]{0,17}$/.test(id)) throw new UsageError(`not a dataset id: "${id}"`);
      if (!datasets.includes(id)) datasets.push(id);
    } else if (arg.startsWith("--")) {
      throw new UsageError(`unknown option ${arg}`);
    } else {
      positional.push(arg);
    }
  }
  if (positional.length !== 2) {
    throw new UsageError(
      positional.length < 2
        ? "give a name and a role"
        : `expected 2 arguments, got ${positional.length}`,
    );
  }
  const [name, role] = positional;
  if (!name.trim()) throw new UsageError("the name must not be blank");
  if (name.length > MAX_NAME) {
    throw new UsageError(`the name must be at most ${MAX_NAME} characters`);
  }
  if (name.includes("\u0000")) throw new UsageError("the name must not contain NUL characters");
  if (isReservedUserName(name)) {
    throw new UsageError(
      `the name must not start with "${EXTERNAL_NAME_PREFIX}": that prefix names identity-provider users`,
    );
  }
  if (!(ROLES as readonly string[]).includes(role)) {
    throw new UsageError(`unknown role "${role}": use one of ${ROLES.join(", ")}`);
  }
  return { name, role: role as Role, datasets };
}

async function run(args: string[]): Promise<void> {
  const { name, role, datasets } = parseArgs(args);
  const config = loadConfig({ tokens: false });
  const database = await openDatabaseUrl(config, cliLog);
  const db = connect(database.url, {
    max: 1,
    connectTimeoutSeconds: config.db.connectTimeoutSeconds,
    statementTimeoutMs: config.db.statementTimeoutMs,
    applicationName: "annotation-server user script",
  });
  try {
    const pending = await pendingMigrations(db);
    if (pending.length) {
      cliLog.warn("the database has pending migrations: run `deno task db:migrate`", { pending });
    }
    const apiKey = newApiKey();
    const apiKeyHash = await hashApiKey(apiKey);
    let user;
    try {
      // One transaction: a dataset that does not exist leaves no user behind.
      user = await transaction(db, async (tx) => {
        const created = await createUser(tx, { name, role, api_key_hash: apiKeyHash });
        if (!created) return null;
        for (const id of datasets) {
          const found = await addDatasetMember(tx, {
            dataset_id: id,
            user_id: created.id,
            ...OPERATOR,
          });
          if (!found.dataset_found) throw new Error(`no dataset ${id}: nothing was created`);
        }
        return created;
      });
    } catch (e) {
      // 42P01 undefined_table: the schema is not there yet.
      if (isPgError(e) && e.code === "42P01") {
        throw new Error("the database has no users table: run `deno task db:migrate` first");
      }
      throw e;
    }
    if (!user) throw new Error(`a user named "${name}" already exists`);
    const of = datasets.length
      ? `, a member of dataset${datasets.length > 1 ? "s" : ""} ${datasets.join(", ")}`
      : "";
    console.error(
      `Created ${user.role} "${user.name}" (id ${user.id}${of}). Its API key is on stdout; it ` +
        `is shown once, only its hash is stored.`,
    );
    console.log(apiKey);
  } finally {
    await db.end({ timeout: 5 });
    await database.stop();
  }
}

if (import.meta.main) await main(run, USAGE);
