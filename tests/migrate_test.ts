import assert from "node:assert/strict";
import { createApp } from "../lib/http/app.ts";
import { connect } from "../lib/db/pool.ts";
import { silentLogger } from "../lib/runtime/log.ts";
import { migrate, migrationVersions, pendingMigrations } from "../lib/db/migrate.ts";
import { listAppliedMigrations } from "../sql/schema/queries.ts";
import { assertError, createEmptyDb, testConfig } from "./harness.ts";

/** The versions dbmate reports applying in its output. */
function appliedIn(stdout: string): string[] {
  return [...stdout.matchAll(/^Applying: (\d+)_/gm)].map((m) => m[1]);
}

const pool = (url: string) =>
  connect(url, { max: 2, connectTimeoutSeconds: 10, statementTimeoutMs: 60_000 });

Deno.test("migrations", async (t) => {
  const empty = await createEmptyDb();
  const a = pool(empty.url);
  const b = pool(empty.url);
  try {
    const versions = await migrationVersions();
    assert.ok(versions.length > 0);
    const app = createApp({ db: a, config: testConfig(), log: silentLogger });

    await t.step("healthz is 200 whatever the database", async () => {
      const res = await app.request("/healthz");
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { status: "ok" });
    });

    await t.step("readyz is 503 and counts the pending migrations before migrating", async () => {
      assert.deepEqual(await pendingMigrations(a), versions);
      const res = await app.request("/readyz");
      const body = await res.json();
      assertError({ status: res.status, headers: res.headers, body }, 503, "not_ready");
      // A count only: the probe is open (tests/readiness_test.ts); the versions go to the log.
      assert.equal(body.error.message, `pending migrations: ${versions.length}`);
    });

    await t.step(
      "two callers migrating at once both succeed, each version applied once",
      async () => {
        const [ra, rb] = await Promise.all([migrate(a, empty.url), migrate(b, empty.url)]);
        assert.equal(ra.code, 0);
        assert.equal(rb.code, 0);
        const applied = [...appliedIn(ra.stdout), ...appliedIn(rb.stdout)].sort();
        assert.deepEqual(applied, versions, "every migration applied exactly once, by one caller");
        assert.deepEqual(await listAppliedMigrations(a), versions);
        const [{ n }] = await a`SELECT count(*)::int AS n FROM schema_migrations`;
        assert.equal(n, versions.length);
      },
    );

    await t.step("migrating again is harmless", async () => {
      const again = await migrate(b, empty.url);
      assert.equal(again.code, 0);
      assert.deepEqual(appliedIn(again.stdout), []);
      assert.deepEqual(await listAppliedMigrations(b), versions);
      assert.deepEqual(await pendingMigrations(b), []);
    });

    await t.step("readyz is 200 once migrated", async () => {
      const res = await app.request("/readyz");
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { status: "ready" });
    });

    await t.step("a migrated database has the tables the app uses", async () => {
      const rows = await a<{ name: string }[]>`
        SELECT table_name AS name FROM information_schema.tables
        WHERE table_schema = 'public' ORDER BY table_name`;
      const names = rows.map((r) => r.name);
      for (const table of ["datasets", "images", "schema_migrations", "users"]) {
        assert.ok(names.includes(table), `${table} missing from ${names.join(", ")}`);
      }
    });
  } finally {
    await a.end();
    await b.end();
    await empty.close();
  }
});
