/**
 * `deno task test [deno test args]`: runs the suite against a real PostgreSQL.
 *
 * The server is the one in TEST_DATABASE_URL (any database on it, used only to create and drop
 * others) or, when that is unset, an embedded one started here on a free port and deleted after.
 * One template database is migrated with dbmate; each test then clones its own database from it
 * (tests/harness.ts), so files run in parallel and no test sees another's rows. Without a path
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
const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
let code = 1;
try {
  await admin.unsafe(`DROP DATABASE IF EXISTS ${template}`);
  await admin.unsafe(`CREATE DATABASE ${template}`);
  const migrated = await dbmate(withDatabase(serverUrl, template), ["up"]);
  if (migrated.code !== 0) throw new Error(`migrating the template failed:\n${migrated.stderr}`);

  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "--allow-all", "--parallel", ...args],
    env: { TEST_DATABASE_URL: serverUrl, TEST_TEMPLATE_DB: template },
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  code = (await child.status).code;
} finally {
  await admin.unsafe(`DROP DATABASE IF EXISTS ${template} WITH (FORCE)`).catch(() => {});
  await admin.end();
  await stopEmbedded?.();
}
Deno.exit(code);
