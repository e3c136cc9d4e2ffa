/**
 * `deno task test [deno test args]`: runs the suite against a real PostgreSQL.
 *
 * The server is the one in TEST_DATABASE_URL (any database on it, used only to create and drop
 * others) or, when that is unset, an embedded one started here on a free port and deleted after.
 * One template database is migrated with dbmate; each test then takes a clone of it of its own
 * (tests/harness.ts; a few are made ahead here), so files run in parallel and no test sees
 * another's rows. Without a path
 * among the arguments, `deno test` runs what deno.json's test.include names: tests/.
 */
import postgres from "postgres";
import {
  EmbeddedPostgresError,
  freePort,
  startEmbeddedPostgres,
} from "../lib/runtime/embedded_pg.ts";
import { dbmate } from "../lib/db/migrate.ts";

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/**
 * Keeps `keep` clones of the template ready for the tests (tests/harness.ts takes one by renaming
 * it): a clone takes 100 ms, and a second or more on a busy machine, which every test would
 * otherwise wait for. Two connections make them while the tests run.
 */
function cloneAhead(
  url: string,
  template: string,
  prefix: string,
  keep = 6,
): { stop(): Promise<void> } {
  let stopped = false;
  let made = 0;
  const ready = `${prefix}ready_`;
  const maker = async () => {
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      while (!stopped) {
        const [{ n }] = await sql.unsafe<{ n: number }[]>(
          "SELECT count(*)::int AS n FROM pg_database WHERE starts_with(datname, $1)",
          [ready],
        );
        if (n < keep) {
          await sql.unsafe(`CREATE DATABASE ${ready}${++made} TEMPLATE ${template}`);
        } else {
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    } catch (e) {
      // The tests make their own clones then; the run is not failed for it.
      if (!stopped) console.error(`making clones ahead stopped: ${(e as Error).message}`);
    } finally {
      await sql.end();
    }
  };
  const makers = [maker(), maker()];
  return {
    async stop() {
      stopped = true;
      await Promise.all(makers);
    },
  };
}

const args = Deno.args.length ? Deno.args : ["tests/"];
let serverUrl = Deno.env.get("TEST_DATABASE_URL");
let stopEmbedded: (() => Promise<void>) | undefined;

if (!serverUrl) {
  const started = performance.now();
  const server = await startEmbeddedPostgres({
    dir: `.data/test-postgres-${Deno.pid}`,
    port: freePort(),
    database: "postgres",
    persistent: false,
    // A throwaway cluster: durability buys nothing here, speed does.
    settings: {
      fsync: "off",
      synchronous_commit: "off",
      full_page_writes: "off",
      max_connections: "300",
    },
  }).catch((e) => {
    // Why it cannot run here, in one line (lib/runtime/embedded_pg.ts), not a stack trace.
    if (!(e instanceof EmbeddedPostgresError)) throw e;
    console.error(`error: ${e.message}`);
    Deno.exit(1);
  });
  serverUrl = server.url;
  stopEmbedded = server.stop;
  console.log(`embedded PostgreSQL up in ${Math.round(performance.now() - started)} ms`);
}

const template = `annotation_test_template_${Deno.pid}`;
/** Every clone of the template the tests use starts with this (tests/harness.ts). */
const clonePrefix = `test_${Deno.pid}_`;
const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
let code = 1;
try {
  await admin.unsafe(`DROP DATABASE IF EXISTS ${template}`);
  await admin.unsafe(`CREATE DATABASE ${template}`);
  const migrated = await dbmate(withDatabase(serverUrl, template), ["up"]);
  if (migrated.code !== 0) throw new Error(`migrating the template failed:\n${migrated.stderr}`);

  const ahead = cloneAhead(serverUrl, template, clonePrefix);
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["test", "--allow-all", "--parallel", ...args],
      env: {
        TEST_DATABASE_URL: serverUrl,
        TEST_TEMPLATE_DB: template,
        TEST_CLONE_PREFIX: clonePrefix,
      },
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    code = (await child.status).code;
  } finally {
    await ahead.stop();
  }
} finally {
  // What is left of the tests' clones: made ahead and not taken, or left by a killed test.
  const clones = await admin.unsafe<{ name: string }[]>(
    "SELECT datname AS name FROM pg_database WHERE starts_with(datname, $1)",
    [clonePrefix],
  ).catch(() => []);
  for (const { name } of clones) {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
  }
  await admin.unsafe(`DROP DATABASE IF EXISTS ${template} WITH (FORCE)`).catch(() => {});
  await admin.end();
  await stopEmbedded?.();
}
Deno.exit(code);
