import assert from "node:assert/strict";
import { createLogger } from "../lib/log.ts";
import { assertError, createTestApp } from "./harness.ts";

Deno.test("request logs, request ids and metrics", async (t) => {
  const lines: string[] = [];
  const h = await createTestApp({
    log: createLogger("debug", (line) => lines.push(line)),
    config: { METRICS_TOKEN: "metrics-token-0123456789" },
  });
  try {
    await t.step("one JSON line per request with the agreed fields", async () => {
      lines.length = 0;
      const res = await h.req("POST", "/api/v1/datasets", { name: "logged", labels: ["a"] });
      assert.equal(res.status, 201);
      const entries = lines.map((l) => JSON.parse(l)).filter((e) => e.msg === "request");
      assert.equal(entries.length, 1);
      const e = entries[0];
      assert.equal(e.level, "info");
      assert.equal(e.method, "POST");
      assert.equal(e.route, "/api/v1/datasets");
      assert.equal(e.status, 201);
      assert.equal(typeof e.duration_ms, "number");
      assert.equal(e.user_id, h.admin.id);
      assert.equal(e.request_id, res.headers.get("x-request-id"));
      assert.match(e.request_id, /^[0-9a-f-]{36}$/);
    });

    await t.step("the route label is the pattern, not the path", async () => {
      lines.length = 0;
      await h.req("GET", "/api/v1/datasets/12345");
      const e = JSON.parse(lines.find((l) => l.includes('"request"'))!);
      assert.equal(e.route, "/api/v1/datasets/:datasetId");
      assert.equal(e.status, 404);
    });

    await t.step("a client's X-Request-Id is kept; an unsafe one is replaced", async () => {
      let res = await h.req("GET", "/healthz", undefined, { "x-request-id": "abc-123.X" });
      assert.equal(res.headers.get("x-request-id"), "abc-123.X");
      res = await h.req("GET", "/healthz", undefined, { "x-request-id": 'evil" {"json": 1} <x>' });
      assert.match(res.headers.get("x-request-id")!, /^[0-9a-f-]{36}$/);
    });

    await t.step("no token, API key or password ever reaches the log", async () => {
      lines.length = 0;
      const u = await h.user("machine");
      await h.anon("POST", "/api/v1/auth/token", { api_key: u.apiKey });
      await h.anon("POST", "/api/v1/auth/token", { api_key: "ak_wrong_key_value_123" });
      await u.req("GET", "/api/v1/me");
      await h.client("forged.token.value")("GET", "/api/v1/me");
      const created = await h.req("POST", "/api/v1/users", { name: "logged-user", role: "admin" });
      await h.req("GET", "/metrics", undefined, {
        authorization: "Bearer metrics-token-0123456789",
      });
      const all = lines.join("\n");
      for (
        const secret of [
          u.apiKey,
          u.token,
          h.admin.token,
          created.body.api_key,
          "ak_wrong_key_value_123",
          "forged.token.value",
          "metrics-token-0123456789",
        ]
      ) {
        assert.ok(!all.includes(secret), `a secret leaked into the log: ${secret.slice(0, 12)}…`);
      }
      assert.ok(lines.length >= 6, "the requests were logged");
    });

    await t.step("metrics need METRICS_TOKEN when it is set, and count requests", async () => {
      assertError(await h.anon("GET", "/metrics"), 401);
      assertError(await h.client("wrong-token-0123456789")("GET", "/metrics"), 401);
      const res = await h.req("GET", "/metrics", undefined, {
        authorization: "Bearer metrics-token-0123456789",
      });
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type")!, /^text\/plain/);
      const text = res.body as string;
      assert.match(
        text,
        /http_requests_total\{method="POST",route="\/api\/v1\/datasets",status="201"\} 1/,
      );
      assert.match(text, /http_request_duration_seconds_bucket\{.*le="\+Inf"\} \d+/);
      assert.match(text, /# TYPE claims_issued_total counter/);
      assert.match(text, /# TYPE annotations_created_total counter/);
      assert.match(text, /db_pool_max_connections 10/);
      // In-flight counts, named for what they count (queued queries included), not "pool in use".
      assert.match(text, /^# TYPE db_queries_in_flight gauge$/m);
      assert.match(text, /^db_queries_in_flight \d+$/m);
      assert.match(text, /^db_transactions_in_flight \d+$/m);
      assert.doesNotMatch(text, /db_pool_in_use/);
    });
  } finally {
    await h.close();
  }
});

Deno.test("a request slower than REQUEST_TIMEOUT_MS gets a 503", async () => {
  const h = await createTestApp({ config: { REQUEST_TIMEOUT_MS: "200" } });
  try {
    // A body that arrives slower than the limit keeps the handler waiting.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"name":"slow",'));
        timer = setTimeout(() => {
          controller.enqueue(new TextEncoder().encode('"labels":["a"]}'));
          controller.close();
        }, 600);
      },
    });
    const started = performance.now();
    const res = await h.app.request("/api/v1/datasets", {
      method: "POST",
      body,
      headers: { "content-type": "application/json", authorization: `Bearer ${h.admin.token}` },
    });
    const elapsed = performance.now() - started;
    assert.equal(res.status, 503);
    assert.equal((await res.json()).error.code, "timeout");
    assert.ok(elapsed < 550, `answered after ${elapsed} ms`);
    await new Promise((r) => setTimeout(r, 700));
    clearTimeout(timer);
  } finally {
    await h.close();
  }
});

Deno.test("a timed-out write is cancelled: the 503 never hides a row that lands later", async () => {
  const h = await createTestApp({ config: { REQUEST_TIMEOUT_MS: "300" } });
  try {
    const ds = await h.req("POST", "/api/v1/datasets", { name: "timeouts", labels: ["a"] });
    const img = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
      images: [{ uri: "s3://b/t.jpg" }],
    });
    const machine = await h.user("machine");
    const predictions = {
      predictions: [{ image_id: img.body.images[0].id, model: { name: "m", version: "1" } }],
    };
    // Another session blocks every insert into annotations until it commits.
    const blocker = await h.db.reserve();
    let res;
    try {
      await blocker.unsafe("BEGIN");
      await blocker.unsafe("LOCK TABLE annotations IN EXCLUSIVE MODE");
      const started = performance.now();
      res = await machine.req("POST", `/api/v1/datasets/${ds.body.id}/predictions`, predictions);
      const elapsed = performance.now() - started;
      assert.ok(elapsed < 2000, `answered after ${elapsed} ms`);
    } finally {
      await blocker.unsafe("COMMIT");
      blocker.release();
    }
    assertError(res, 503, "timeout");
    await new Promise((r) => setTimeout(r, 300));
    const rows = await h.db.unsafe(`SELECT count(*)::int AS n FROM annotations`);
    assert.equal(rows[0].n, 0, "the cancelled insert never landed");
    // Without the lock the same request succeeds: the deadline cancels only late requests.
    const ok = await machine.req("POST", `/api/v1/datasets/${ds.body.id}/predictions`, predictions);
    assert.equal(ok.status, 200);
    assert.equal(ok.body.created, 1);
  } finally {
    await h.close();
  }
});
