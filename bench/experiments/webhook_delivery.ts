/**
 * `deno run -A bench/experiments/webhook_delivery.ts [--events N] [--rounds N] [--root DIR]`:
 * what one webhook delivery costs the server, with no other load.
 *
 * Starts the server as the bench does (its own process, production settings), one webhook
 * subscribed to annotation.created and a receiver on 127.0.0.1 in this process
 * (testkit/webhook_receiver.ts, answering 200). Each round writes `--events` deliveries straight
 * into the outbox (the payload of a one-bbox annotation.created event) and waits until the
 * receiver has them all; it prints deliveries/s and the server's CPU per delivery (the process,
 * all threads: the claims, the address check, the signing, the POST and the recording). The
 * delivery worker shares the server's thread with the requests (lib/webhooks/worker.ts), so each
 * microsecond here is one the annotator cycle waits behind when a webhook is subscribed.
 * `--root DIR` runs the server of another checkout (a worktree of another commit, after
 * `deno install` in it) on the same schema.
 */
import postgres from "postgres";
import { migrate } from "../../lib/db/migrate.ts";
import type { Db } from "../../lib/db/pool.ts";
import { adminToken, call } from "../../testkit/api.ts";
import { startLoadServer } from "../../testkit/process.ts";
import { startReceiver } from "../../testkit/webhook_receiver.ts";
import { openBenchDatabase } from "../lib/database.ts";
import { flag, option } from "../lib/args.ts";

const events = flag("--events", 20_000);
const rounds = flag("--rounds", 3);
const root = option("--root");

const db = await openBenchDatabase("embedded", Deno.env.get("DATABASE_URL"));
const sql = postgres(db.url, { max: 2, onnotice: () => {} });
await migrate(sql as unknown as Db, db.url);
const server = await startLoadServer({
  databaseUrl: db.url,
  root,
  env: { WEBHOOK_ALLOW_PRIVATE_TARGETS: "true" },
});
const receiver = startReceiver();
try {
  const admin = await adminToken(server.url);
  const hook = await call(server.url, admin, "POST", "/api/v1/webhooks", {
    url: receiver.url,
    events: ["annotation.created"],
  });
  if (hook.status !== 201) throw new Error(`createWebhook: ${JSON.stringify(hook.body)}`);
  const webhookId = (hook.body as { webhook: { id: string } }).webhook.id;
  // A one-bbox annotation.created payload, the size the cycle's events have.
  const data = {
    annotation: {
      id: "1",
      image_id: "1",
      dataset_id: "1",
      source: "human",
      author_id: "2",
      model_name: null,
      model_version: null,
      confidence: null,
      labels: ["car"],
      shapes: [{ type: "bbox", label: "car", x: 10, y: 20, width: 100, height: 50 }],
      created_at: new Date().toISOString(),
      status: "submitted",
      reviewed_by: null,
      reviewed_at: null,
      review_comment: null,
    },
    image: { id: "1", dataset_id: "1", external_id: "img-1", uri: "s3://bucket/images/1.jpg" },
  };
  for (let round = 0; round <= rounds; round++) {
    // Round 0 warms up (JIT, prepared statements) and is not printed.
    const n = round === 0 ? 2_000 : events;
    const before = receiver.received.length;
    await sql`
      INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, data)
      SELECT ${webhookId}::bigint, nextval('webhook_event_ids'), 'annotation.created',
        ${sql.json(data)}::jsonb
      FROM generate_series(1, ${n}::integer)`;
    const cpu0 = server.cpuSeconds();
    const t0 = performance.now();
    await receiver.waitFor((r) => r.length >= before + n, 300_000);
    const wall = (performance.now() - t0) / 1000;
    const cpu = server.cpuSeconds() - cpu0;
    if (round === 0) continue;
    console.log(
      `round ${round}: ${n} deliveries, ${(n / wall).toFixed(0)}/s; server CPU ` +
        `${(1e6 * cpu / n).toFixed(1)} µs each`,
    );
  }
  console.log(`received twice at once: ${receiver.overlaps}`);
} finally {
  await server.stop();
  await receiver.close();
  await sql.end();
  await db.stop();
}
