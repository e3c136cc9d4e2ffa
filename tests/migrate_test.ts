import assert from "node:assert/strict";
import { createApp } from "../lib/http/app.ts";
import { connect, type Db } from "../lib/db/pool.ts";
import { silentLogger } from "../lib/runtime/log.ts";
import { migrate, migrationVersions, pendingMigrations } from "../lib/db/migrate.ts";
import { listAppliedMigrations } from "../sql/schema/queries.ts";
import { assertError, createEmptyDb, testConfig, withDb } from "./harness.ts";

/** The versions dbmate reports applying in its output. */
function appliedIn(stdout: string): string[] {
  return [...stdout.matchAll(/^Applying: (\d+)_/gm)].map((m) => m[1]);
}

const pool = (url: string) =>
  connect(url, { max: 2, connectTimeoutSeconds: 10, statementTimeoutMs: 60_000 });

/** A test on an empty (unmigrated) database of its own, with two pools on it. */
function withEmpty(
  name: string,
  fn: (t: { url: string; a: Db; b: Db; versions: string[] }) => Promise<void>,
): void {
  Deno.test(name, async () => {
    const empty = await createEmptyDb();
    const a = pool(empty.url);
    const b = pool(empty.url);
    try {
      const versions = await migrationVersions();
      assert.ok(versions.length > 0);
      await fn({ url: empty.url, a, b, versions });
    } finally {
      await a.end();
      await b.end();
      await empty.close();
    }
  });
}

const appOn = (db: Db) => createApp({ db, config: testConfig(), log: silentLogger });

withEmpty("migrations: healthz is 200 whatever the database", async ({ a }) => {
  const res = await appOn(a).request("/healthz");
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: "ok" });
});

withEmpty(
  "migrations: readyz is 503 and counts the pending migrations before migrating",
  async ({ a, versions }) => {
    assert.deepEqual(await pendingMigrations(a), versions);
    const res = await appOn(a).request("/readyz");
    const body = await res.json();
    assertError({ status: res.status, headers: res.headers, body }, 503, "not_ready");
    // A count only: the probe is open (tests/readiness_test.ts); the versions go to the log.
    assert.equal(body.error.message, `pending migrations: ${versions.length}`);
  },
);

withEmpty(
  "migrations: two callers migrating at once both succeed, each version applied once",
  async ({ url, a, b, versions }) => {
    const [ra, rb] = await Promise.all([migrate(a, url), migrate(b, url)]);
    assert.equal(ra.code, 0);
    assert.equal(rb.code, 0);
    const applied = [...appliedIn(ra.stdout), ...appliedIn(rb.stdout)].sort();
    assert.deepEqual(applied, versions, "every migration applied exactly once, by one caller");
    assert.deepEqual(await listAppliedMigrations(a), versions);
    const [{ n }] = await a`SELECT count(*)::int AS n FROM schema_migrations`;
    assert.equal(n, versions.length);
  },
);

// The database `deno task test` clones for each test was migrated by dbmate as migrate() runs it.

withDb("migrations: migrating again is harmless", async (h) => {
  const versions = await migrationVersions();
  const again = await migrate(h.db, h.url);
  assert.equal(again.code, 0);
  assert.deepEqual(appliedIn(again.stdout), []);
  assert.deepEqual(await listAppliedMigrations(h.db), versions);
  assert.deepEqual(await pendingMigrations(h.db), []);
});

withDb("migrations: readyz is 200 once migrated", async ({ db }) => {
  const res = await appOn(db).request("/readyz");
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: "ready" });
});

withDb("migrations: a migrated database has the tables the app uses", async ({ db }) => {
  const rows = await db<{ name: string }[]>`
    SELECT table_name AS name FROM information_schema.tables
    WHERE table_schema = 'public' ORDER BY table_name`;
  const names = rows.map((r) => r.name);
  for (const table of ["datasets", "images", "schema_migrations", "users"]) {
    assert.ok(names.includes(table), `${table} missing from ${names.join(", ")}`);
  }
});
