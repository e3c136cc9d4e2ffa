/** The webhook delivery statements (sql/webhooks/*) against a real database: plans and pruning. */
import assert from "node:assert/strict";
import type { Handle } from "../lib/db/pool.ts";
import { transaction } from "../lib/db/query.ts";
import { bind, statement } from "../lib/db/statement.ts";
import {
  attemptColumns,
  type ClaimDeliveriesParams,
  type PrunedWebhookHistory,
  pruneWebhookHistory,
  type PruneWebhookHistoryParams,
  recordAttempts,
  type RecordAttemptsParams,
} from "../sql/webhooks/queries.ts";
import { rawExec, rawOne, withDb } from "./harness.ts";
import { assertReadsThrough, checkPlans, type PlanNode, planNodes } from "./plans.ts";

/** A webhook on annotation.created, made directly: its id. */
async function newWebhook(db: Handle): Promise<string> {
  const row = await rawOne<{ id: string }>(
    db,
    `INSERT INTO webhooks (url, events, secret)
     VALUES ('https://hooks.example.com/', '{annotation.created}', '\\x00') RETURNING id::text`,
  );
  return row!.id;
}

/**
 * `n` deliveries (events 1 to n) due over the last hour, each leased for 20 s and then delivered,
 * none vacuumed since: the due index keeps two dead entries for each (its pending and its sending
 * version), at its head.
 */
async function deliveredSinceVacuum(db: Handle, webhookId: string, n: number): Promise<void> {
  await rawExec(
    db,
    `INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, data, next_attempt_at)
     SELECT $1::bigint, g, 'annotation.created', '{}',
       now() - interval '1 hour' + g * (interval '1 hour' / $2::integer)
     FROM generate_series(1, $2::integer) g`,
    [webhookId, n],
  );
  await rawExec(
    db,
    `UPDATE webhook_deliveries
     SET state = 'sending', attempts = 1, next_attempt_at = next_attempt_at + interval '20 s'`,
  );
  await rawExec(db, "UPDATE webhook_deliveries SET state = 'delivered', next_attempt_at = NULL");
}

withDb(
  "record attempts: each delivery found by its primary key, not through the due index's dead entries",
  async ({ db }) => {
    const webhookId = await newWebhook(db);
    // The statistics see none in flight, and the last 20 are taken for sending after that.
    await deliveredSinceVacuum(db, webhookId, 20000);
    await rawExec(db, "ANALYZE webhook_deliveries");
    await rawExec(
      db,
      `UPDATE webhook_deliveries
       SET state = 'sending', attempts = 2, next_attempt_at = now() + interval '1 minute'
       WHERE event_id > 19980`,
    );

    const events = Array.from({ length: 8 }, (_, i) => String(19990 + i));
    const results = events.map((event_id) => ({
      webhook_id: webhookId,
      event_id,
      attempt: 2,
      attempted_at: new Date().toISOString(),
      status_code: 200,
      latency_ms: 3,
      error: null,
      outcome: "delivered" as const,
      retry_in: null,
    }));
    const check = (plan: PlanNode, what: string) =>
      assertReadsThrough(plan, "webhook_deliveries", "webhook_deliveries_pkey", what);
    await checkPlans(
      db,
      statement<RecordAttemptsParams>("webhooks/record_attempts"),
      attemptColumns(results),
      check,
    );

    await recordAttempts(db, results);
    const after = await rawOne<{ delivered: number; logged: number }>(
      db,
      `SELECT (SELECT count(*)::int FROM webhook_deliveries
               WHERE event_id = ANY ($1::bigint[]) AND state = 'delivered') AS delivered,
              (SELECT count(*)::int FROM webhook_attempts) AS logged`,
      [events],
    );
    assert.deepEqual(after, { delivered: 8, logged: 8 });
  },
);

withDb(
  "prune webhook history: ended deliveries and attempts past retention, a limit a call, by index",
  async ({ db }) => {
    const webhookId = await newWebhook(db);
    // Events 1-20,000 still owed after 40 days (a receiver down), 20,001-23,000 delivered or
    // failed 31 days ago, 23,001-23,100 delivered yesterday; 2,500 attempts 31 days ago, then 10
    // yesterday.
    await rawExec(
      db,
      `INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, data, created_at, state,
         attempts, next_attempt_at)
       SELECT $1::bigint, g, 'annotation.created', '{}',
         now() - make_interval(days => CASE WHEN g <= 20000 THEN 40 WHEN g <= 23000 THEN 31
           ELSE 1 END),
         CASE WHEN g <= 20000 THEN 'pending' WHEN g % 2 = 0 THEN 'delivered' ELSE 'failed' END, 1,
         CASE WHEN g <= 20000 THEN now() + interval '1 hour' END
       FROM generate_series(1, 23100) g`,
      [webhookId],
    );
    await rawExec(
      db,
      `INSERT INTO webhook_attempts (webhook_id, event_id, attempt, attempted_at, status_code,
         latency_ms, outcome)
       SELECT $1::bigint, g, 1, now() - make_interval(days => CASE WHEN g <= 2500 THEN 31 ELSE 1
         END), 200, 5, 'delivered'
       FROM generate_series(1, 2510) g`,
      [webhookId],
    );
    await rawExec(db, "ANALYZE webhook_deliveries, webhook_attempts");

    const params = { retention_days: 30, limit: 1000 };
    await checkPlans(
      db,
      statement<PruneWebhookHistoryParams>("webhooks/prune_webhook_history"),
      params,
      (plan, what) => {
        const nodes = planNodes(plan);
        assert.ok(
          nodes.some((n) => n["Index Name"] === "webhook_deliveries_ended_idx"),
          `${what}: webhook_deliveries_ended_idx not used`,
        );
        const seq = nodes.filter((n) => n["Node Type"] === "Seq Scan");
        assert.deepEqual(seq.map((n) => n["Relation Name"]), [], `${what}: a sequential scan`);
      },
    );

    const calls: PrunedWebhookHistory[] = [];
    do calls.push(await pruneWebhookHistory(db, params)); while (
      calls.at(-1)!.deliveries === 1000 || calls.at(-1)!.attempts === 1000
    );
    assert.deepEqual(calls, [
      { deliveries: 1000, attempts: 1000 },
      { deliveries: 1000, attempts: 1000 },
      { deliveries: 1000, attempts: 500 },
      { deliveries: 0, attempts: 0 },
    ]);
    const left = await rawOne(
      db,
      `SELECT
         (SELECT count(*)::int FROM webhook_deliveries WHERE state = 'pending') AS owed,
         (SELECT count(*)::int FROM webhook_deliveries WHERE state <> 'pending') AS ended,
         (SELECT min(event_id)::int FROM webhook_deliveries WHERE state <> 'pending') AS oldest,
         (SELECT count(*)::int FROM webhook_attempts) AS attempts`,
    );
    assert.deepEqual(left, { owed: 20000, ended: 100, oldest: 23001, attempts: 10 });
  },
);

withDb(
  "claim deliveries: a webhook's scan starts at its since, past the due index's dead entries",
  async ({ db }) => {
    const webhookId = await newWebhook(db);
    // 20,000 deliveries since the last vacuum, then 5 new ones due now.
    await deliveredSinceVacuum(db, webhookId, 20000);
    await rawExec(
      db,
      `INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, data)
       SELECT $1::bigint, g, 'annotation.created', '{}' FROM generate_series(20001, 20005) g`,
      [webhookId],
    );

    const CLAIM = statement<ClaimDeliveriesParams>("webhooks/claim_deliveries");
    /** The pages the due index scan read, and the events claimed (rolled back). */
    const claim = async (since: string | null) => {
      type Explained = { "QUERY PLAN": [{ Plan: PlanNode }] };
      const params: ClaimDeliveriesParams = {
        limit: 32,
        per_webhook: 16,
        busy_ids: [],
        busy_counts: [],
        since_ids: since ? [webhookId] : [],
        since_ats: since ? [since] : [],
        lease_seconds: 20,
      };
      return await transaction(db, async (tx) => {
        const explained = await rawOne<Explained>(
          tx,
          `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${CLAIM.text}`,
          bind(CLAIM, params),
        );
        const scan = planNodes(explained!["QUERY PLAN"][0].Plan).find((n) =>
          n["Index Name"] === "webhook_deliveries_due_idx"
        )!;
        const claimed = await rawOne<{ n: number }>(
          tx,
          "SELECT count(*)::int AS n FROM webhook_deliveries WHERE state = 'sending'",
        );
        await rawExec(tx, "ROLLBACK AND CHAIN");
        return {
          pages: Number(scan["Shared Hit Blocks"]) + Number(scan["Shared Read Blocks"]),
          claimed: claimed!.n,
        };
      });
    };
    await claim(null); // marks the dead entries, as the first scan after them does
    const head = await claim(null);
    const since = await claim(new Date(Date.now() - 5_000).toISOString());
    assert.equal(head.claimed, 5);
    assert.equal(since.claimed, 5);
    assert.ok(
      since.pages * 10 < head.pages,
      `from since: ${since.pages} pages; from the head: ${head.pages}`,
    );
  },
);
