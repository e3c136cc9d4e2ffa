/** The webhook delivery statements (sql/webhooks/*) against a real database: their plans. */
import assert from "node:assert/strict";
import { statement } from "../lib/db/statement.ts";
import { recordAttempts, type RecordAttemptsParams } from "../sql/webhooks/queries.ts";
import { rawExec, rawOne, withDb } from "./harness.ts";
import { checkPlans, type PlanNode, planNodes } from "./plans.ts";

withDb(
  "record attempts: each delivery found by its primary key, not through the due index's dead entries",
  async ({ db }) => {
    const { id: webhookId } = (await rawOne<{ id: string }>(
      db,
      `INSERT INTO webhooks (url, events, secret)
       VALUES ('https://hooks.example.com/', '{annotation.created}', '\\x00') RETURNING id::text`,
    ))!;
    // 20,000 deliveries made and delivered: the due index keeps an entry for each version of
    // them (pending, then sending) until a vacuum. The statistics then see none in flight, and
    // the last 20 are taken for sending after that.
    await rawExec(
      db,
      `INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, data)
       SELECT $1::bigint, g, 'annotation.created', jsonb_build_object('n', g)
       FROM generate_series(1, 20000) g`,
      [webhookId],
    );
    await rawExec(
      db,
      `UPDATE webhook_deliveries
       SET state = 'sending', attempts = 1, next_attempt_at = now() + interval '1 minute'`,
    );
    await rawExec(
      db,
      "UPDATE webhook_deliveries SET state = 'delivered', next_attempt_at = NULL",
    );
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
    const params: RecordAttemptsParams = {
      webhook_ids: results.map((r) => r.webhook_id),
      event_ids: results.map((r) => r.event_id),
      attempts: results.map((r) => r.attempt),
      attempted_at: results.map((r) => r.attempted_at),
      status_codes: results.map((r) => r.status_code),
      latencies_ms: results.map((r) => r.latency_ms),
      errors: results.map((r) => r.error),
      outcomes: results.map((r) => r.outcome),
      retries_in: results.map((r) => r.retry_in),
    };
    const check = (plan: PlanNode, what: string) => {
      // The table's scans (a bitmap heap scan names its index on the node below it).
      const scans = planNodes(plan).filter((n) =>
        n["Relation Name"] === "webhook_deliveries" && n["Node Type"] !== "ModifyTable"
      );
      assert.ok(scans.length > 0, `${what}: webhook_deliveries not read`);
      for (const scan of scans) {
        const index = planNodes(scan).find((n) => n["Index Name"])?.["Index Name"];
        assert.equal(index, "webhook_deliveries_pkey", `${what}: ${scan["Node Type"]} ${index}`);
      }
    };
    await checkPlans(
      db,
      statement<RecordAttemptsParams>("webhooks/record_attempts"),
      params,
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
