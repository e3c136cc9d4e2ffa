/** db/schema.sql is the schema the migrations give (deno task db:dump writes it). */
import assert from "node:assert/strict";
import { dumpSchema, SCHEMA_FILE } from "../scripts/schema.ts";
import { haveDebianPostgres, postgresBin } from "../testkit/debian_postgres.ts";

const canDump = haveDebianPostgres();
if (!canDump) {
  console.warn(
    `WARNING: no PostgreSQL binaries in ${postgresBin()}: db/schema.sql is not checked ` +
      "(apt-get install postgresql-15, or set POSTGRES_BIN)",
  );
}

Deno.test({
  name: "db/schema.sql is what the migrations give (else: deno task db:dump)",
  ignore: !canDump,
  async fn() {
    const committed = await Deno.readTextFile(SCHEMA_FILE);
    const current = await dumpSchema();
    if (committed === current) return;
    const a = committed.split("\n");
    const b = current.split("\n");
    const at = a.findIndex((line, i) => line !== b[i]);
    assert.fail(
      `db/schema.sql is stale: run \`deno task db:dump\` and commit it. First difference at line ` +
        `${at + 1}:\n  committed: ${a[at] ?? "(end)"}\n  migrations: ${b[at] ?? "(end)"}`,
    );
  },
});
