/**
 * Graceful shutdown of the real server process. A request is held in flight by a table lock
 * this test takes (no test-only route): the server lists datasets, which waits on the lock
 * until the test commits. The test's own connections carry an application_name of their own,
 * so the server's (`annotation-server`) can be counted: none may remain once it has exited.
 */
import assert from "node:assert/strict";
import { connect, type Db } from "../lib/db/pool.ts";
import { createTestDb, type TestDb } from "./harness.ts";
import { adminToken } from "../testkit/api.ts";
import {
  dbEnv,
  exitWithin,
  productionEnv,
  type ServerProcess,
  startServer,
} from "../testkit/process.ts";

/** A pool for the test itself, not named like the server's. */
function testPool(tdb: TestDb): Db {
  return connect(tdb.url, {
    max: 3,
    connectTimeoutSeconds: 5,
    statementTimeoutMs: 0,
    applicationName: "shutdown-test",
  });
}

/** The server's connections to this database (its pool's application_name). */
async function serverConnections(db: Db): Promise<number> {
  const [row] = await db`
    SELECT count(*)::int AS n FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = 'annotation-server'`;
  return row.n;
}

/** After the exit: every connection of the server's pool is gone (it closed its pool). */
async function assertPoolClosed(db: Db): Promise<void> {
  // A backend takes a moment to leave pg_stat_activity after its client says goodbye.
  const deadline = Date.now() + 3000;
  let n = await serverConnections(db);
  while (n > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25));
    n = await serverConnections(db);
  }
  assert.equal(n, 0, "connections of the server's pool remain after it exited");
}

/** Holds an exclusive lock on `datasets` until `release()`. */
async function lockDatasets(db: Db): Promise<{ release(): Promise<void> }> {
  let release!: () => void;
  const held = new Promise<void>((r) => release = r);
  let locked!: () => void;
  const isLocked = new Promise<void>((r) => locked = r);
  const tx = db.begin(async (tx) => {
    await tx`LOCK TABLE datasets IN ACCESS EXCLUSIVE MODE`;
    locked();
    await held;
  });
  await Promise.race([isLocked, tx]);
  return {
    async release() {
      release();
      await tx;
    },
  };
}

/** Waits until one of the server's queries is waiting for a lock. */
async function waitForBlockedQuery(db: Db, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const [row] = await db`
      SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE application_name = 'annotation-server' AND wait_event_type = 'Lock'`;
    if (row.n > 0) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("the request never blocked on the lock");
}

/** True when a new TCP connection to the port is refused. */
async function refused(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return false;
  } catch (e) {
    if (e instanceof Deno.errors.ConnectionRefused) return true;
    throw e;
  }
}

async function pollUntil(what: string, check: () => Promise<boolean>, ms: number) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * The request the test holds in flight. A failure to send it surfaces where it is awaited, not
 * as an unhandled rejection while the test waits for it to block (which would end the file
 * without the server's output).
 */
function listDatasets(server: ServerProcess, token: string): Promise<Response> {
  const res = fetch(`${server.url}/api/v1/datasets`, {
    headers: { authorization: `Bearer ${token}` },
  });
  res.catch(() => {});
  return res;
}

/**
 * A server process on a fresh database with `env` on top of production's, and a pool of the
 * test's own on that database; both torn down after `fn`, whatever it does.
 */
async function withServer(
  env: Record<string, string>,
  fn: (server: ServerProcess, db: Db, token: string) => Promise<void>,
): Promise<void> {
  const tdb = await createTestDb(3);
  const db = testPool(tdb);
  let server: ServerProcess | undefined;
  try {
    server = await startServer({ ...productionEnv(), ...dbEnv(tdb.url), ...env });
    try {
      await fn(server, db, await adminToken(server));
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- the server's output:\n${server.output()}`, {
        cause: e,
      });
    }
  } finally {
    server?.kill("SIGKILL");
    await server?.exited;
    await db.end({ timeout: 1 });
    await tdb.close();
  }
}

Deno.test("SIGTERM: readiness 503 at once, in-flight request finishes, exit 0", () =>
  withServer(
    { SHUTDOWN_DELAY_SECONDS: "1", SHUTDOWN_TIMEOUT_SECONDS: "10" },
    async (server, db, token) => {
      assert.equal((await fetch(`${server.url}/readyz`)).status, 200);

      const lock = await lockDatasets(db);
      const inFlight = listDatasets(server, token);
      await waitForBlockedQuery(db);
      assert.ok(await serverConnections(db) > 0, "the server's pool is connected");

      const signalled = performance.now();
      server.kill("SIGTERM");

      // During SHUTDOWN_DELAY_SECONDS the server still answers, but is not ready.
      await pollUntil("readyz 503", async () => {
        const res = await fetch(`${server.url}/readyz`, { headers: { connection: "close" } });
        const body = await res.json();
        return res.status === 503 && body.error.message === "shutting down";
      }, 900);
      assert.equal(
        (await fetch(`${server.url}/healthz`, { headers: { connection: "close" } })).status,
        200,
      );

      // Then the listener closes: new connections are refused, the process keeps running.
      await pollUntil("connections refused", () => refused(server.port), 3000);
      assert.ok(performance.now() - signalled >= 900, "closed before SHUTDOWN_DELAY_SECONDS");
      const early = await Promise.race([server.exited, new Promise((r) => setTimeout(r, 300))]);
      assert.equal(early, undefined, "the process exited with a request in flight");

      await lock.release();
      const res = await inFlight;
      assert.equal(res.status, 200, await res.clone().text());
      assert.ok(Array.isArray((await res.json()).items));

      assert.equal(await exitWithin(server, 10_000), 0, server.output());
      const logs = server.logs();
      assert.ok(logs.some((l) => l.msg === "shutdown started" && l.signal === "SIGTERM"));
      assert.ok(logs.some((l) => l.msg === "shutdown complete" && l.drained === true));
      assert.ok(
        logs.some((l) => l.msg === "request" && l.route === "/api/v1/datasets" && l.status === 200),
      );
      await assertPoolClosed(db);
    },
  ));

Deno.test("SIGINT: the in-flight request finishes, the pool closes, exit 0", () =>
  withServer({ SHUTDOWN_TIMEOUT_SECONDS: "10" }, async (server, db, token) => {
    const lock = await lockDatasets(db);
    const inFlight = listDatasets(server, token);
    await waitForBlockedQuery(db);

    server.kill("SIGINT");
    // The listener closes at once (no delay): new connections are refused, the request waits.
    await pollUntil("connections refused", () => refused(server.port), 3000);
    const early = await Promise.race([server.exited, new Promise((r) => setTimeout(r, 300))]);
    assert.equal(early, undefined, "the process exited with a request in flight");

    await lock.release();
    const res = await inFlight;
    assert.equal(res.status, 200, await res.clone().text());
    assert.ok(Array.isArray((await res.json()).items));
    assert.equal(await exitWithin(server, 10_000), 0, server.output());
    const logs = server.logs();
    assert.ok(logs.some((l) => l.msg === "shutdown started" && l.signal === "SIGINT"));
    assert.ok(logs.some((l) => l.msg === "shutdown complete" && l.drained === true));
    await assertPoolClosed(db);
  }));

Deno.test("SIGTERM: a request outlasting SHUTDOWN_TIMEOUT_SECONDS is cut off, exit 1", () =>
  withServer({ SHUTDOWN_TIMEOUT_SECONDS: "1" }, async (server, db, token) => {
    const lock = await lockDatasets(db);
    try {
      const inFlight = listDatasets(server, token).then((r) => r.status, (e) => e as Error);
      await waitForBlockedQuery(db);
      const signalled = performance.now();
      server.kill("SIGTERM");
      assert.equal(await exitWithin(server, 5000), 1, server.output());
      const took = performance.now() - signalled;
      assert.ok(took >= 1000 && took < 4000, `exited after ${took} ms`);
      const outcome = await inFlight;
      assert.ok(outcome instanceof Error, `the cut-off request got ${outcome}`);
      assert.ok(
        server.logs().some((l) => l.msg === "shutdown timed out: in-flight requests cut off"),
      );
    } finally {
      await lock.release();
    }
    await assertPoolClosed(db);
  }));
