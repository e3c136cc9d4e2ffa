/**
 * The webhooks API (admins): the secret shown once, validation, updates, and the SSRF guard at
 * createWebhook and updateWebhook. The guard's tests resolve names and never connect: they use
 * address literals, `localhost`, and documentation addresses (203.0.113.0/24) that no test sends
 * to. Delivery is tests/webhook_delivery_test.ts.
 */
import assert from "node:assert/strict";
import { blockedAddress, targetCheck } from "../lib/webhooks/targets.ts";
import { pinnedLookup } from "../lib/webhooks/send.ts";
import { secretBytes } from "../lib/webhooks/signing.ts";
import { assertError, createTestApp, rawOne, withApp } from "./harness.ts";

withApp("createWebhook shows the secret once; list and get never show it", async (h) => {
  const ds = await h.req("POST", "/api/v1/datasets", { name: "wh", labels: ["a"] });
  const res = await h.req("POST", "/api/v1/webhooks", {
    url: "https://203.0.113.7/hooks",
    events: ["annotation.created", "image.completed"],
    dataset_id: ds.body.id,
    description: "training pipeline",
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  assert.match(res.body.secret, /^whsec_[A-Za-z0-9+/]+=*$/);
  assert.equal(secretBytes(res.body.secret).length, 32);
  const w = res.body.webhook;
  assert.deepEqual(
    { ...w, id: "", created_at: "", updated_at: "" },
    {
      id: "",
      url: "https://203.0.113.7/hooks",
      events: ["annotation.created", "image.completed"],
      dataset_id: ds.body.id,
      description: "training pipeline",
      enabled: true,
      status: "active",
      failing_since: null,
      disabled_reason: null,
      previous_secret_until: null,
      created_at: "",
      updated_at: "",
    },
  );
  const list = await h.req("GET", "/api/v1/webhooks");
  const got = await h.req("GET", `/api/v1/webhooks/${w.id}`);
  assert.deepEqual(list.body.items, [w]);
  assert.deepEqual(got.body, w);
  assert.ok(!JSON.stringify([list.body, got.body]).includes(res.body.secret.slice(6)));
  // Stored as the key's bytes, never returned after this answer.
  const stored = await rawOne<{ secret: Uint8Array }>(
    h.db,
    "SELECT secret FROM webhooks WHERE id = $1",
    [w.id],
  );
  assert.deepEqual([...stored!.secret], [...secretBytes(res.body.secret)]);
  const rotated = await h.req("POST", `/api/v1/webhooks/${w.id}/secret`);
  assert.notEqual(rotated.body.secret, res.body.secret);
  assert.ok(rotated.body.webhook.previous_secret_until);
});

withApp("webhook requests are validated: events, URL, dataset, ids", async (h) => {
  const post = (body: unknown) => h.req("POST", "/api/v1/webhooks", body);
  const url = "https://203.0.113.7/";
  assertError(await post({ url, events: [] }), 400, "validation_failed");
  assertError(await post({ url, events: ["annotation.deleted"] }), 400, "validation_failed");
  assertError(await post({ url, events: ["webhook.ping"] }), 400, "validation_failed");
  assertError(
    await post({ url, events: ["image.completed", "image.completed"] }),
    400,
    "validation_failed",
  );
  assertError(await post({ url: "ftp://203.0.113.7/", events: ["image.completed"] }), 400);
  assertError(await post({ url: "not a url", events: ["image.completed"] }), 400);
  assertError(await post({ url, events: ["image.completed"], secret: "x" }), 400);
  assertError(await post({ url, events: ["image.completed"], dataset_id: "999" }), 404);
  assertError(await h.req("GET", "/api/v1/webhooks/999"), 404, "not_found");
  assertError(await h.req("PATCH", "/api/v1/webhooks/999", { enabled: false }), 404);
  assertError(await h.req("DELETE", "/api/v1/webhooks/999"), 404);
  assertError(await h.req("POST", "/api/v1/webhooks/999/ping"), 404);
  assertError(await h.req("POST", "/api/v1/webhooks/999/secret"), 404);
  assertError(await h.req("GET", "/api/v1/webhooks/999/deliveries"), 404);
  const w = (await post({ url, events: ["image.completed"] })).body.webhook;
  assertError(await h.req("PATCH", `/api/v1/webhooks/${w.id}`, {}), 400, "validation_failed");
  assertError(
    await h.req("POST", `/api/v1/webhooks/${w.id}/events/42/redeliver`),
    400,
    "validation_failed",
  );
  assertError(
    await h.req("POST", `/api/v1/webhooks/${w.id}/events/evt_424242/redeliver`),
    404,
    "not_found",
  );
});

withApp("updateWebhook changes what is given; disabling and enabling; deleting", async (h) => {
  const w = (await h.req("POST", "/api/v1/webhooks", {
    url: "https://203.0.113.7/a",
    events: ["image.completed"],
    description: "d",
  })).body.webhook;
  let res = await h.req("PATCH", `/api/v1/webhooks/${w.id}`, {
    url: "https://203.0.113.8/b",
    events: ["claim.expired", "dataset.completed"],
  });
  assert.equal(res.status, 200);
  assert.equal(res.body.url, "https://203.0.113.8/b");
  assert.deepEqual(res.body.events, ["claim.expired", "dataset.completed"]);
  assert.equal(res.body.description, "d");
  res = await h.req("PATCH", `/api/v1/webhooks/${w.id}`, { enabled: false, description: null });
  assert.equal(res.body.status, "disabled");
  assert.equal(res.body.disabled_reason, "admin");
  assert.equal(res.body.description, null);
  assertError(await h.req("POST", `/api/v1/webhooks/${w.id}/ping`), 409, "webhook_disabled");
  res = await h.req("PATCH", `/api/v1/webhooks/${w.id}`, { enabled: true });
  assert.equal(res.body.status, "active");
  assert.equal(res.body.disabled_reason, null);
  const ping = await h.req("POST", `/api/v1/webhooks/${w.id}/ping`);
  assert.equal(ping.status, 202);
  assert.match(ping.body.event_id, /^evt_\d+$/);
  assert.equal((await h.req("DELETE", `/api/v1/webhooks/${w.id}`)).status, 204);
  assertError(await h.req("GET", `/api/v1/webhooks/${w.id}`), 404);
  const left = await rawOne<{ n: number }>(
    h.db,
    "SELECT count(*)::int AS n FROM webhook_deliveries WHERE webhook_id = $1",
    [w.id],
  );
  assert.equal(left!.n, 0, "its queued events went with it");
});

const PRIVATE_URLS: [string, RegExp][] = [
  ["http://127.0.0.1:8000/hook", /127\.0\.0\.1, a loopback address/],
  ["http://localhost/hook", /localhost resolves to (127\.0\.0\.1|::1), a loopback address/],
  ["http://10.1.2.3/", /a private address/],
  ["http://172.20.0.1/", /a private address/],
  ["http://192.168.1.1/", /a private address/],
  ["http://100.64.0.1/", /a CGNAT address/],
  ["http://169.254.169.254/latest/meta-data/", /link-local \(cloud metadata\)/],
  ["http://0.0.0.0/", /unspecified/],
  ["http://[::1]/", /loopback/],
  ["http://[fd00:ec2::254]/", /unique local/],
  ["http://[fe80::1]/", /link-local/],
  ["http://[::ffff:10.0.0.1]/", /private/],
  // Other spellings of 127.0.0.1 that URL parsing normalises.
  ["http://2130706433/", /127\.0\.0\.1, a loopback/],
  ["http://0x7f.1/", /127\.0\.0\.1, a loopback/],
];

Deno.test("without WEBHOOK_ALLOW_PRIVATE_TARGETS, internal destinations are refused with 400", async () => {
  const h = await createTestApp({ config: { WEBHOOK_ALLOW_PRIVATE_TARGETS: "false" } });
  try {
    for (const [url, why] of PRIVATE_URLS) {
      const res = await h.req("POST", "/api/v1/webhooks", { url, events: ["image.completed"] });
      assertError(res, 400, "validation_failed");
      assert.match(res.body.error.message, /^body\.url: /, url);
      assert.match(res.body.error.message, why, url);
    }
    // A public address is accepted (outside production, http too), and an update is guarded.
    const ok = await h.req("POST", "/api/v1/webhooks", {
      url: "http://203.0.113.7/hook",
      events: ["image.completed"],
    });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    const moved = await h.req("PATCH", `/api/v1/webhooks/${ok.body.webhook.id}`, {
      url: "http://169.254.169.254/",
    });
    assertError(moved, 400, "validation_failed");
    assert.equal(
      (await h.req("GET", `/api/v1/webhooks/${ok.body.webhook.id}`)).body.url,
      ok.body.webhook.url,
    );
  } finally {
    await h.close();
  }
});

Deno.test("in production only https:// is accepted, unless private targets are allowed", async () => {
  const prod = await createTestApp({ config: { APP_ENV: "production" } });
  const allowed = await createTestApp({
    config: { APP_ENV: "production", WEBHOOK_ALLOW_PRIVATE_TARGETS: "true" },
  });
  try {
    const events = ["image.completed"];
    const http = await prod.req("POST", "/api/v1/webhooks", { url: "http://203.0.113.7/", events });
    assertError(http, 400, "validation_failed");
    assert.match(http.body.error.message, /must be https:\/\//);
    const https = await prod.req("POST", "/api/v1/webhooks", {
      url: "https://203.0.113.7/",
      events,
    });
    assert.equal(https.status, 201);
    for (const url of ["http://127.0.0.1:9/", "http://10.0.0.1/"]) {
      const res = await allowed.req("POST", "/api/v1/webhooks", { url, events });
      assert.equal(res.status, 201, url);
    }
  } finally {
    await prod.close();
    await allowed.close();
  }
});

Deno.test("a send's lookup answers only the addresses judged, in the family asked for", () => {
  const ask = (addresses: string[], options: { family?: number | string; all?: boolean }) => {
    let got: unknown[] = [];
    // deno-lint-ignore no-explicit-any
    pinnedLookup(addresses)("hooks.example", options as any, (...args: unknown[]) => got = args);
    return got;
  };
  const both = ["203.0.113.9", "2001:db8::1"];
  assert.deepEqual(ask(both, {}), [null, "203.0.113.9", 4]);
  assert.deepEqual(ask(both, { family: 6 }), [null, "2001:db8::1", 6]);
  assert.deepEqual(ask(both, { family: "IPv6" }), [null, "2001:db8::1", 6]);
  assert.deepEqual(ask(both, { all: true }), [null, [
    { address: "203.0.113.9", family: 4 },
    { address: "2001:db8::1", family: 6 },
  ]]);
  assert.deepEqual(ask(both, { all: true, family: 4 }), [null, [
    { address: "203.0.113.9", family: 4 },
  ]]);
  const [error] = ask(["203.0.113.9"], { family: 6 });
  assert.equal((error as { code: string }).code, "ENOTFOUND");
});

Deno.test("the guard judges every address a name resolves to", async () => {
  const check = (addresses: string[]) =>
    targetCheck({
      allowPrivate: false,
      httpsOnly: false,
      resolve: () => Promise.resolve(addresses),
    });
  assert.equal(await check(["203.0.113.9"])("https://hooks.example/"), null);
  assert.match(
    (await check(["203.0.113.9", "10.0.0.5"])("https://hooks.example/"))!,
    /hooks\.example resolves to 10\.0\.0\.5, a private address/,
  );
  assert.match((await check([])("https://hooks.example/"))!, /does not resolve/);
  for (const ip of ["8.8.8.8", "203.0.113.1", "2001:db8::1", "2606:4700::1111"]) {
    assert.equal(blockedAddress(ip), null, ip);
  }
  for (
    const ip of ["127.1.2.3", "172.31.255.255", "100.127.0.1", "224.0.0.1", "::", "64:ff9b::a00:1"]
  ) {
    assert.ok(blockedAddress(ip), ip);
  }
  assert.equal(blockedAddress("172.32.0.1"), null);
  assert.equal(blockedAddress("100.128.0.1"), null);
});
