/**
 * /readyz is open to anyone who can reach it, so its 503 says only why in general ("database
 * unavailable", "pending migrations: N"); the database's own error text goes to the log.
 */
import assert from "node:assert/strict";
import { createApp } from "../lib/http/app.ts";
import { connect } from "../lib/db/pool.ts";
import { createLogger } from "../lib/runtime/log.ts";
import { migrationVersions } from "../lib/db/migrate.ts";
import { createEmptyDb, testConfig } from "./harness.ts";

function appOn(url: string) {
  const lines: Record<string, unknown>[] = [];
  const db = connect(url, { max: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 5000 });
  const log = createLogger("debug", (line) => lines.push(JSON.parse(line)));
  const app = createApp({ db, config: testConfig(), log });
  return { app, db, lines };
}

async function readyz(app: ReturnType<typeof createApp>) {
  const res = await app.request("/readyz");
  return { status: res.status, text: await res.text() };
}

Deno.test("readyz: a database error's text stays in the log", async () => {
  const role = `nobody_${crypto.randomUUID().slice(0, 8)}`;
  const u = new URL(Deno.env.get("TEST_DATABASE_URL")!);
  u.username = role;
  u.password = "wrong-password";
  u.pathname = "/secret_database_name";
  const { app, db, lines } = appOn(u.toString());
  try {
    const res = await readyz(app);
    assert.equal(res.status, 503);
    assert.deepEqual(JSON.parse(res.text), {
      error: { code: "not_ready", message: "database unavailable" },
    });
    for (const leak of [role, "secret_database_name", u.hostname, "password"]) {
      assert.ok(!res.text.includes(leak), `${leak} reached the client: ${res.text}`);
    }
    const logged = lines.find((l) => l.msg === "not ready");
    assert.ok(logged, "the detail is logged");
    assert.equal(logged.level, "warn");
    assert.equal(logged.reason, "database unavailable");
    assert.match(String(logged.detail), new RegExp(role), "the log has the database's words");
  } finally {
    await db.end({ timeout: 0 });
  }
});

Deno.test("readyz: pending migrations are counted, not listed", async () => {
  const empty = await createEmptyDb();
  const { app, db, lines } = appOn(empty.url);
  try {
    const versions = await migrationVersions();
    const res = await readyz(app);
    assert.equal(res.status, 503);
    assert.deepEqual(JSON.parse(res.text), {
      error: { code: "not_ready", message: `pending migrations: ${versions.length}` },
    });
    for (const v of versions) assert.ok(!res.text.includes(v), `version ${v} reached the client`);
    const logged = lines.find((l) => l.msg === "not ready");
    assert.ok(String(logged?.detail).includes(versions[0]), "the versions are in the log");
  } finally {
    await db.end({ timeout: 0 });
    await empty.close();
  }
});
