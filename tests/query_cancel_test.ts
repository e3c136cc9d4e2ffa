/**
 * Cancelling a request's queries (lib/http/app.ts's deadline, lib/db/query.ts QueryScope) while other
 * queries wait behind them on the same connection: every query must settle, and each with its own
 * result. postgres.js pipelines queries on a busy connection; cancelling two in a row there lost
 * track of the first (it never settled, and the next query's result could be read as its own).
 */
import assert from "node:assert/strict";
import { connect } from "../lib/db/pool.ts";
import { many, one } from "../lib/db/query.ts";
import { QueryScope } from "../lib/db/scope.ts";
import { inlineStatement } from "../lib/db/statement.ts";
import { assertError, createTestApp, createTestDb } from "./harness.ts";

const settle = <T>(p: Promise<T>, ms: number) =>
  Promise.race([
    p.then((v) => ({ value: v }), (e) => ({ error: e as Error })),
    new Promise<{ hung: true }>((r) => setTimeout(() => r({ hung: true }), ms)),
  ]);

Deno.test("cancelled queries queued behind a busy connection all settle, with their own results", async () => {
  const tdb = await createTestDb(1);
  const db = connect(tdb.url, { max: 1, connectTimeoutSeconds: 5, statementTimeoutMs: 10_000 });
  try {
    await one(db, inlineStatement("SELECT 1"), {});
    const slow = many(db, inlineStatement("SELECT pg_sleep(0.3)"), {});
    const scope = new QueryScope();
    const cancelled = scope.run(() =>
      Promise.all([
        one(db, inlineStatement<Record<never, never>, { v: number }>("SELECT 2 AS v"), {}),
        one(db, inlineStatement<Record<never, never>, { v: number }>("SELECT 3 AS v"), {}),
      ])
    );
    const after = [4, 5, 6].map((n) =>
      one(db, inlineStatement<Record<never, never>, { v: number }>(`SELECT ${n} AS v`), {})
    );
    await new Promise((r) => setTimeout(r, 50));
    scope.expire(new Error("deadline"));
    const outcomes = await Promise.all([
      settle(slow, 3000),
      settle(cancelled, 3000),
      ...after.map((p) => settle(p, 3000)),
    ]);
    assert.ok(
      !outcomes.some((o) => "hung" in o),
      `a query never settled: ${JSON.stringify(outcomes)}`,
    );
    for (const [i, o] of outcomes.slice(2).entries()) {
      assert.ok("value" in o, `query ${i + 4}: ${JSON.stringify(o)}`);
      assert.equal((o.value as { v: number }).v, i + 4, "each query gets its own result");
    }
  } finally {
    await db.end({ timeout: 1 });
    await tdb.close();
  }
});

Deno.test("a request whose deadline passes while its query waits for a connection: 503", async () => {
  // One connection, held by another request's query that waits on a lock.
  const h = await createTestApp({ poolMax: 1, config: { REQUEST_TIMEOUT_MS: "300" } });
  const blocker = connect(h.url, {
    max: 1,
    connectTimeoutSeconds: 5,
    statementTimeoutMs: 0,
    applicationName: "query-cancel-test",
  });
  try {
    const ds = await h.req("POST", "/api/v1/datasets", {
      name: "queued",
      labels: ["a"],
      access: "open",
    });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const tx = blocker.begin(async (tx) => {
      await tx`LOCK TABLE datasets IN ACCESS EXCLUSIVE MODE`;
      locked();
      await held;
    });
    await isLocked;
    let answers;
    try {
      // The first takes the pool's only connection and waits on the lock; the second waits in
      // the pool's queue. Both pass their deadline there.
      answers = await Promise.all([
        h.req("GET", `/api/v1/datasets/${ds.body.id}`),
        h.req("GET", `/api/v1/datasets/${ds.body.id}/stats`),
      ]);
    } finally {
      release();
      await tx;
    }
    for (const res of answers) assertError(res, 503, "timeout");
    assert.equal((await h.req("GET", `/api/v1/datasets/${ds.body.id}`)).status, 200);
  } finally {
    await blocker.end({ timeout: 1 });
    await h.close();
  }
});
