/**
 * db/migrations/20261206160000_leases.sql on a database that already holds claims and reviews:
 * they become the partitions of current_leases and ended_leases with every row and id kept, and
 * the rollback gives the tables back as they were.
 */
import assert from "node:assert/strict";
import { connect } from "../lib/db/pool.ts";
import { dbmate } from "../lib/db/migrate.ts";
import { createEmptyDb, rollBackBefore } from "./harness.ts";

const VERSION = "20261206160000";

Deno.test("the lease migration keeps every claim and review, and rolls back", async () => {
  const empty = await createEmptyDb();
  const db = connect(empty.url, { max: 1, connectTimeoutSeconds: 10, statementTimeoutMs: 60_000 });
  try {
    const up = async () => assert.equal((await dbmate(empty.url, ["up"])).code, 0);
    const back = () => rollBackBefore(db, empty.url, VERSION);
    await up();
    await back();
    // Leases as the tables held them before: one live claim and one live review, one of each
    // ended (the review with its decision). Review ids far from claim ids.
    await db.unsafe(
      `WITH u AS (INSERT INTO users (name, role) VALUES ('r', 'reviewer') RETURNING id),
       d AS (INSERT INTO datasets (name, labels) VALUES ('before', '{a}') RETURNING id),
       i AS (
         INSERT INTO images (dataset_id, uri) SELECT d.id, 's3://b/' || g FROM d,
           generate_series(1, 2) g
         RETURNING id
       ),
       c AS (
         INSERT INTO current_claims (user_id, dataset_id, claim_id, image_id, claimed_at,
           expires_at, active)
         SELECT u.id, d.id, 7, (SELECT min(id) FROM i), now(), now() + interval '1 hour', true
         FROM u, d
       ),
       e AS (
         INSERT INTO ended_claims (claim_id, dataset_id, image_id, user_id, claimed_at,
           expires_at, ended_at, end_reason)
         SELECT 6, d.id, (SELECT min(id) FROM i), u.id, now(), now(), now(), 'released' FROM u, d
       ),
       r AS (
         INSERT INTO current_reviews (user_id, dataset_id, review_id, image_id, claimed_at,
           expires_at, active)
         SELECT u.id, d.id, 9007, (SELECT max(id) FROM i), now(), now() + interval '1 hour', true
         FROM u, d
       )
       INSERT INTO ended_reviews (review_id, dataset_id, image_id, user_id, claimed_at,
         expires_at, ended_at, end_reason, decision)
       SELECT 9006, d.id, (SELECT max(id) FROM i), u.id, now(), now(), now(), 'completed',
         'accept'
       FROM u, d`,
    );
    await up();
    const leases = await db.unsafe(
      "SELECT kind, id::int, active, end_reason, decision FROM leases ORDER BY id",
    );
    assert.deepEqual(leases.map((l) => ({ ...l })), [
      { kind: "annotate", id: 6, active: false, end_reason: "released", decision: null },
      { kind: "annotate", id: 7, active: true, end_reason: null, decision: null },
      { kind: "review", id: 9006, active: false, end_reason: "completed", decision: "accept" },
      { kind: "review", id: 9007, active: true, end_reason: null, decision: null },
    ]);
    const claims = await db.unsafe("SELECT id::int FROM claims ORDER BY id");
    assert.deepEqual(claims.map((c) => c.id), [6, 7]);
    // A row written to a partition directly takes the partition's kind.
    await db.unsafe(
      `INSERT INTO ended_claims (claim_id, dataset_id, image_id, user_id, claimed_at, expires_at,
         ended_at, end_reason)
       SELECT 8, dataset_id, image_id, user_id, claimed_at, expires_at, now(), 'completed'
       FROM current_claims`,
    );
    const [{ kind }] = await db.unsafe("SELECT kind FROM ended_leases WHERE claim_id = 8");
    assert.equal(kind, "annotate");

    await back();
    const reviews = await db.unsafe(
      `SELECT (SELECT review_id::int FROM current_reviews) AS live,
         (SELECT review_id::int FROM ended_reviews) AS ended,
         (SELECT count(*)::int FROM claims) AS claims`,
    );
    assert.deepEqual({ ...reviews[0] }, { live: 9007, ended: 9006, claims: 3 });
    await up();
  } finally {
    await db.end({ timeout: 5 });
    await empty.close();
  }
});
