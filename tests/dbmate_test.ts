/**
 * dbmate gets the database URL (and so the password) through its environment, never its command
 * line, which every user on the host can read.
 */
import assert from "node:assert/strict";
import { createEmptyDb } from "./harness.ts";
import { dbmate, DBMATE_URL_VARIABLE, dbmateCommand } from "../lib/db/migrate.ts";

const PASSWORD = "s3cr3t-p@ss:w/rd";

Deno.test("the dbmate command line carries no URL and no password", () => {
  const url = `postgres://app:${encodeURIComponent(PASSWORD)}@db.internal:5432/annotations`;
  const { args, env } = dbmateCommand(url, ["up"]);
  const argv = args.join(" ");
  for (const secret of [PASSWORD, encodeURIComponent(PASSWORD), "postgres://", "db.internal"]) {
    assert.ok(!argv.includes(secret), `${secret} is on the command line: ${argv}`);
  }
  assert.ok(!args.includes("--url") && !args.includes("-u"));
  assert.equal(args[args.indexOf("--env") + 1], DBMATE_URL_VARIABLE);
  const given = new URL(env[DBMATE_URL_VARIABLE]);
  assert.equal(decodeURIComponent(given.password), PASSWORD);
  assert.equal(given.searchParams.get("sslmode"), "disable", "lib/pq needs an explicit sslmode");
  // The other flags stay: the project's config, its migrations folder, no schema dump.
  assert.ok(args.includes("--config") && args.includes("--migrations-dir"));
  assert.ok(args.includes("--no-dump-schema"));
  assert.deepEqual(args.slice(-1), ["up"]);
});

Deno.test("dbmate finds the database through that variable", async () => {
  const empty = await createEmptyDb();
  try {
    const status = await dbmate(empty.url, ["status"]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /Pending: [1-9]/);
    const up = await dbmate(empty.url, ["up"]);
    assert.equal(up.code, 0, up.stderr);
    assert.match((await dbmate(empty.url, ["status"])).stdout, /Pending: 0/);
  } finally {
    await empty.close();
  }
});
