import assert from "node:assert/strict";
import { Hono } from "hono";
import postgres from "postgres";
import { ApiError, makeOnError } from "../lib/http/errors.ts";
import { createLogger, type Level } from "../lib/runtime/log.ts";
import { assertError, createTestApp, type TestApp, withApp } from "./harness.ts";

/** The value of one series in Prometheus text, or undefined when it is absent. */
function metricValue(text: string, name: string, labels = ""): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

// Request logs, request ids and metrics.

/** A test on a fresh app that logs at debug into `lines` and wants METRICS_TOKEN for /metrics. */
function withLogged(name: string, fn: (t: { h: TestApp; lines: string[] }) => Promise<void>) {
  const lines: string[] = [];
  withApp(
    name,
    {
      log: createLogger("debug", (line) => lines.push(line)),
      config: { METRICS_TOKEN: "metrics-token-0123456789" },
    },
    (h) => fn({ h, lines }),
  );
}

withLogged(
  "observability: one JSON line per request with the agreed fields",
  async ({ h, lines }) => {
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
  },
);

withLogged("observability: the route label is the pattern, not the path", async ({ h, lines }) => {
  lines.length = 0;
  await h.req("GET", "/api/v1/datasets/12345");
  const e = JSON.parse(lines.find((l) => l.includes('"request"'))!);
  assert.equal(e.route, "/api/v1/datasets/:datasetId");
  assert.equal(e.status, 404);
});

withLogged(
  "observability: a client's X-Request-Id is kept; an unsafe one is replaced",
  async ({ h }) => {
    let res = await h.req("GET", "/healthz", undefined, { "x-request-id": "abc-123.X" });
    assert.equal(res.headers.get("x-request-id"), "abc-123.X");
    res = await h.req("GET", "/healthz", undefined, { "x-request-id": 'evil" {"json": 1} <x>' });
    assert.match(res.headers.get("x-request-id")!, /^[0-9a-f-]{36}$/);
  },
);

withLogged(
  "observability: every kind of answer carries the request's id, the one its log line has",
  async ({ h, lines }) => {
    const id = (res: { headers: Headers }) => res.headers.get("x-request-id");
    const sent = { "x-request-id": "kept-1" };
    const created = await h.req("POST", "/api/v1/datasets", { name: "ids", labels: ["a"] }, sent);
    assert.equal(created.status, 201);
    assert.equal(id(created), "kept-1");
    // 204 (no image to claim), an error thrown by a handler, one thrown by authentication, an
    // unmatched path.
    const answers = [
      await h.req("POST", `/api/v1/datasets/${created.body.id}/claims`),
      await h.req("GET", "/api/v1/datasets/12345"),
      await h.app.request("/api/v1/datasets"),
      await h.app.request("/nowhere"),
    ];
    assert.deepEqual(answers.map((r) => r.status), [204, 404, 401, 404]);
    lines.length = 0;
    for (const res of answers) assert.match(id(res)!, /^[0-9a-f-]{36}$/);
    const unauthorized = await h.app.request("/api/v1/datasets", { headers: sent });
    assert.equal(id(unauthorized), "kept-1");
    const logged = lines.map((l) => JSON.parse(l)).find((e) => e.msg === "request");
    assert.equal(logged.request_id, "kept-1");
    assert.equal(logged.status, 401);
  },
);

withLogged(
  "observability: no token, API key or password ever reaches the log",
  async ({ h, lines }) => {
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
  },
);

withLogged(
  "observability: metrics need METRICS_TOKEN when it is set, and count requests",
  async ({ h }) => {
    assert.equal(
      (await h.req("POST", "/api/v1/datasets", { name: "counted", labels: ["a"] })).status,
      201,
    );
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
  },
);

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
    const ds = await h.req("POST", "/api/v1/datasets", {
      name: "timeouts",
      labels: ["a"],
      access: "open",
    });
    const img = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
      images: [{ uri: "s3://b/t.jpg" }],
    });
    const machine = await h.user("machine");
    const predictions = {
      predictions: [
        { image_id: img.body.images[0].id, model: { name: "m", version: "1" }, empty: true },
      ],
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

withApp("claims_issued_total and annotations_created_total count what happened", async (h) => {
  const scrape = async () => (await h.anon("GET", "/metrics")).body as string;
  const values = async () => {
    const text = await scrape();
    return {
      claims: metricValue(text, "claims_issued_total") ?? 0,
      human: metricValue(text, "annotations_created_total", '{source="human"}') ?? 0,
      machine: metricValue(text, "annotations_created_total", '{source="machine"}') ?? 0,
    };
  };
  assert.deepEqual(await values(), { claims: 0, human: 0, machine: 0 });

  const ds = await h.req("POST", "/api/v1/datasets", {
    name: "counted",
    labels: ["cat"],
    access: "open",
  });
  const reg = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
    images: [0, 1, 2].map((i) => ({ uri: `s3://b/counted-${i}.jpg`, external_id: `c${i}` })),
  });
  assert.equal(reg.status, 200);
  const annotator = await h.user("annotator");
  const machine = await h.user("machine");

  const claim = await annotator.req("POST", `/api/v1/datasets/${ds.body.id}/claims`);
  assert.equal(claim.status, 201);
  assert.deepEqual(await values(), { claims: 1, human: 0, machine: 0 });
  // Asking again returns the same live claim (200): not a new one.
  assert.equal(
    (await annotator.req("POST", `/api/v1/datasets/${ds.body.id}/claims`)).status,
    200,
  );
  assert.deepEqual(await values(), { claims: 1, human: 0, machine: 0 });

  const submit = await annotator.req(
    "POST",
    `/api/v1/images/${claim.body.claim.image_id}/annotations`,
    { claim_id: claim.body.claim.id, labels: ["cat"] },
  );
  assert.equal(submit.status, 201);
  assert.deepEqual(await values(), { claims: 1, human: 1, machine: 0 });

  const preds = await machine.req("POST", `/api/v1/datasets/${ds.body.id}/predictions`, {
    predictions: [
      { external_id: "c1", model: { name: "m", version: "1" }, empty: true },
      { external_id: "c2", model: { name: "m", version: "1" }, empty: true },
      { external_id: "missing", model: { name: "m", version: "1" }, empty: true },
    ],
  });
  assert.equal(preds.status, 200);
  assert.equal(preds.body.created, 2);
  assert.deepEqual(await values(), { claims: 1, human: 1, machine: 2 }, "only rows created");

  const one = await machine.req("POST", `/api/v1/images/${reg.body.images[0].id}/annotations`, {
    model: { name: "m", version: "2" },
    labels: ["cat"],
  });
  assert.equal(one.status, 201);
  // A refused submit counts nothing.
  assertError(
    await annotator.req("POST", `/api/v1/images/${claim.body.claim.image_id}/annotations`, {
      claim_id: claim.body.claim.id,
      labels: ["cat"],
    }),
    409,
  );
  assert.deepEqual(await values(), { claims: 1, human: 1, machine: 3 });
});

Deno.test("expected 503s are logged at warn without a stack; unexpected errors at error", async () => {
  const lines: { level: Level; entry: Record<string, unknown> }[] = [];
  const log = createLogger(
    "debug",
    (line, level) => lines.push({ level, entry: JSON.parse(line) }),
  );
  const app = new Hono();
  const failures: Record<string, () => Error> = {
    timeout: () => new ApiError(503, "timeout", "the request took longer than 5 ms"),
    statement: () =>
      new postgres.PostgresError({
        code: "57014",
        message: "canceling statement due to statement timeout",
      } as never),
    busy: () => new postgres.PostgresError({ code: "40001", message: "serialize" } as never),
    shutdown: () => new postgres.PostgresError({ code: "57P01", message: "terminating" } as never),
    refused: () => Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
    bug: () => new TypeError("undefined is not a function"),
  };
  for (const [name, make] of Object.entries(failures)) {
    app.get(`/${name}`, () => {
      throw make();
    });
  }
  app.onError(makeOnError(log));

  for (const name of ["timeout", "statement", "busy", "shutdown", "refused"]) {
    lines.length = 0;
    const res = await app.request(`/${name}`);
    assert.equal(res.status, 503, name);
    await res.body?.cancel();
    assert.equal(lines.length, 1, `${name}: one line`);
    const [{ level, entry }] = lines;
    assert.equal(level, "warn", `${name} is expected: warn`);
    assert.equal(entry.msg, "request failed");
    assert.equal(entry.status, 503);
    assert.equal(typeof entry.code, "string");
    assert.ok(!String(entry.error).includes("\n    at "), `${name}: no stack: ${entry.error}`);
  }
  const statement = await app.request("/statement");
  await statement.body?.cancel();
  assert.match(String(lines.at(-1)!.entry.error), /statement timeout/, "the cause is kept");
  assert.equal(lines.at(-1)!.entry.code, "timeout");

  lines.length = 0;
  const res = await app.request("/bug");
  assert.equal(res.status, 500);
  await res.body?.cancel();
  assert.equal(lines.length, 1);
  assert.equal(lines[0].level, "error");
  assert.match(String(lines[0].entry.error), /TypeError: undefined is not a function\n\s+at /);

  // LOG_LEVEL=error drops the warn lines (and builds none).
  const quiet: string[] = [];
  const onlyErrors = new Hono();
  onlyErrors.get("/t", () => {
    throw failures.timeout();
  });
  onlyErrors.onError(makeOnError(createLogger("error", (l) => quiet.push(l))));
  await (await onlyErrors.request("/t")).body?.cancel();
  assert.deepEqual(quiet, []);
});

Deno.test("LOG_LEVEL: lines below the level are dropped", () => {
  const order: Level[] = ["debug", "info", "warn", "error"];
  for (const min of order) {
    const written: Level[] = [];
    const log = createLogger(min, (line, level) => {
      assert.equal(JSON.parse(line).level, level);
      written.push(level);
    });
    for (const level of order) log[level](`a ${level} line`, { n: 1 });
    const expected = order.slice(order.indexOf(min));
    assert.deepEqual(written, expected, `LOG_LEVEL=${min}`);
    assert.deepEqual(order.filter((l) => log.enabled(l)), expected);
  }
});
