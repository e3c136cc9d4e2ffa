/**
 * DB_STATEMENT_TIMEOUT_MS reaches the real server's connections: with 100 ms, a statement held
 * up by a lock this test takes is cancelled by PostgreSQL (SQLSTATE 57014) after about 100 ms,
 * well before REQUEST_TIMEOUT_MS, and the request answers 503 with the error shape.
 */
import assert from "node:assert/strict";
import { connect } from "../lib/db/pool.ts";
import { createTestDb } from "./harness.ts";
import { adminToken } from "../testkit/api.ts";
import { dbEnv, productionEnv, startServer } from "../testkit/process.ts";

Deno.test("DB_STATEMENT_TIMEOUT_MS=100: a statement held up longer is cancelled, 503", async () => {
  const tdb = await createTestDb(1);
  // The test's own connections, told apart from the server's in pg_stat_activity.
  const own = connect(tdb.url, {
    max: 2,
    connectTimeoutSeconds: 5,
    statementTimeoutMs: 0,
    applicationName: "statement-timeout-test",
  });
  const server = await startServer({
    ...productionEnv(),
    ...dbEnv(tdb.url),
    DB_STATEMENT_TIMEOUT_MS: "100",
    REQUEST_TIMEOUT_MS: "10000",
  });
  try {
    const token = await adminToken(server);
    const list = () =>
      fetch(`${server.url}/api/v1/datasets`, { headers: { authorization: `Bearer ${token}` } });
    const ok = await list();
    assert.equal(ok.status, 200, await ok.text());

    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const tx = own.begin(async (tx) => {
      await tx`LOCK TABLE datasets IN ACCESS EXCLUSIVE MODE`;
      locked();
      await held;
    });
    await isLocked;
    let res: Response;
    let elapsed: number;
    try {
      const started = performance.now();
      res = await list();
      elapsed = performance.now() - started;
    } finally {
      release();
      await tx;
    }
    const body = await res.json();
    assert.equal(res.status, 503, JSON.stringify(body));
    assert.deepEqual(Object.keys(body), ["error"]);
    assert.equal(body.error.code, "timeout");
    assert.equal(body.error.message, "the database took too long to answer; try again");
    // 100 ms, not the 30 s default nor the 10 s request deadline.
    assert.ok(elapsed >= 100 && elapsed < 2000, `answered after ${Math.round(elapsed)} ms`);

    // PostgreSQL's own words for SQLSTATE 57014 from a statement timeout, in the server's log.
    const deadline = Date.now() + 2000;
    let warned;
    while (
      !(warned = server.logs().find((l) => l.msg === "request failed")) && Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(warned, server.output());
    assert.equal(warned.level, "warn");
    assert.match(String(warned.error), /canceling statement due to statement timeout/);

    // Nothing is left waiting, and the server serves again once the lock is gone.
    const [{ n }] = await own`
      SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = 'annotation-server'
        AND wait_event_type = 'Lock'`;
    assert.equal(n, 0);
    const again = await list();
    assert.equal(again.status, 200, await again.text());
  } finally {
    server.kill("SIGKILL");
    await server.exited;
    await own.end({ timeout: 1 });
    await tdb.close();
  }
});
