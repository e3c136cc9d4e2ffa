import assert from "node:assert/strict";
import { createApp } from "../lib/http/app.ts";
import { connect, type Db, isPgError } from "../lib/db/pool.ts";
import { silentLogger } from "../lib/runtime/log.ts";
import {
  imageBatch,
  IMAGES_EXTERNAL_ID_KEY,
  insertNewImages,
  registerImages,
} from "../sql/images/queries.ts";
import { REGISTER_CHUNK } from "../operations/images.ts";
import {
  assertError,
  createTestApp,
  type Res,
  SEES_ALL,
  type TestApp,
  testConfig,
  withApp,
} from "./harness.ts";

/** A registerImages answer: the 200 fields, or `error` on failure. */
interface Registered {
  error: { code: string; message: string; details: { path: string; message: string }[] };
  created: number;
  existing: number;
  images: { id: string; external_id: string | null }[];
}

let datasetSeq = 0;

async function createDataset(h: TestApp, name = `ds-${++datasetSeq}`): Promise<string> {
  const res = await h.req("POST", "/api/v1/datasets", {
    name,
    labels: ["cat", "dog"],
    access: "open",
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return res.body.id;
}

async function imageCount(h: TestApp, datasetId: string): Promise<number> {
  const res = await h.req("GET", `/api/v1/datasets/${datasetId}`);
  assert.equal(res.status, 200);
  return res.body.image_count;
}

function batch(n: number, prefix: string, from = 0) {
  return Array.from({ length: n }, (_, i) => ({
    uri: `s3://bucket/${prefix}/${from + i}.jpg`,
    external_id: `${prefix}-${from + i}`,
    width: 640,
    height: 480,
    priority: (i % 97) / 97,
    metadata: { camera: "front", seq: from + i },
  }));
}

/** Pages through listImages with `limit`, returning every item. */
async function listAll(h: TestApp, datasetId: string, limit: number) {
  const items: { id: string; external_id: string | null; dataset_id: string }[] = [];
  let cursor: string | null = null;
  for (;;) {
    const qs: string = cursor ? `limit=${limit}&cursor=${cursor}` : `limit=${limit}`;
    const res = await h.req("GET", `/api/v1/datasets/${datasetId}/images?${qs}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.ok(res.body.items.length <= limit);
    items.push(...res.body.items);
    cursor = res.body.next_cursor;
    if (cursor === null) return items;
  }
}

function assertAscending(ids: string[]): void {
  for (let i = 1; i < ids.length; i++) {
    assert.ok(BigInt(ids[i - 1]) < BigInt(ids[i]), `ids not ascending at ${i}`);
  }
}

type Register = (datasetId: string, body: unknown) => Promise<Res<Registered>>;

/** A test on a fresh app with one empty dataset `ds`; `register` posts a registerImages body. */
function withDataset(
  name: string,
  fn: (t: { h: TestApp; ds: string; register: Register }) => Promise<void>,
): void {
  withApp(name, async (h) => {
    const register: Register = (datasetId, body) =>
      h.req<Registered>("POST", `/api/v1/datasets/${datasetId}/images`, body);
    await fn({ h, ds: await createDataset(h), register });
  });
}

withDataset(
  "images: registerImages creates images and answers ids in request order",
  async ({ h, ds, register }) => {
    const res = await register(ds, {
      images: [
        { uri: "s3://bucket/a.jpg", external_id: "a", width: 10, height: 20, priority: 0.5 },
        { uri: "gs://bucket/b.jpg", external_id: "b", metadata: { camera: "rear" } },
        { uri: "https://example.com/c.jpg", external_id: "c" },
        { uri: "http://example.com/d.jpg", external_id: "d" },
        { uri: "file:///data/e.jpg", external_id: "e" },
      ],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.created, 5);
    assert.equal(res.body.existing, 0);
    assert.deepEqual(res.body.images.map((i) => i.external_id), ["a", "b", "c", "d", "e"]);
    for (const i of res.body.images) assert.match(i.id, /^[1-9][0-9]*$/);
    assertAscending(res.body.images.map((i) => i.id));
    assert.equal(await imageCount(h, ds), 5);
  },
);

withDataset(
  "images: re-registering an external_id creates nothing and returns its id",
  async ({ h, ds, register }) => {
    const before = await register(ds, {
      images: [{ uri: "s3://bucket/f.jpg", external_id: "f" }, {
        uri: "s3://bucket/g.jpg",
        external_id: "g",
      }],
    });
    assert.equal(before.body.created, 2);
    const retry = await register(ds, {
      images: [{ uri: "s3://bucket/f.jpg", external_id: "f" }, {
        uri: "s3://bucket/g.jpg",
        external_id: "g",
      }],
    });
    assert.equal(retry.status, 200);
    assert.equal(retry.body.created, 0);
    assert.equal(retry.body.existing, 2);
    assert.deepEqual(retry.body.images, before.body.images);

    // Mixed: one known, one new, and the existing image keeps its original fields.
    const mixed = await register(ds, {
      images: [
        { uri: "s3://bucket/h.jpg", external_id: "h" },
        { uri: "s3://other/f-changed.jpg", external_id: "f", priority: 9 },
      ],
    });
    assert.equal(mixed.body.created, 1);
    assert.equal(mixed.body.existing, 1);
    assert.equal(mixed.body.images[1].id, before.body.images[0].id);
    const f = await h.req("GET", `/api/v1/images/${before.body.images[0].id}`);
    assert.equal(f.body.uri, "s3://bucket/f.jpg");
    assert.equal(f.body.priority, 0);
  },
);

withDataset(
  "images: an external_id repeated inside one batch is one image",
  async ({ h, ds, register }) => {
    const count = await imageCount(h, ds);
    const res = await register(ds, {
      images: [
        { uri: "s3://bucket/r1.jpg", external_id: "rep" },
        { uri: "s3://bucket/x.jpg", external_id: "solo" },
        { uri: "s3://bucket/r2.jpg", external_id: "rep" },
        { uri: "s3://bucket/r3.jpg", external_id: "rep" },
      ],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.created, 2);
    assert.equal(res.body.existing, 2);
    const [r1, solo, r2, r3] = res.body.images;
    assert.equal(r1.id, r2.id);
    assert.equal(r1.id, r3.id);
    assert.notEqual(r1.id, solo.id);
    assert.equal(await imageCount(h, ds), count + 2);
    const img = await h.req("GET", `/api/v1/images/${r1.id}`);
    assert.equal(img.body.uri, "s3://bucket/r1.jpg", "the first occurrence wins");
  },
);

withDataset("images: images without external_id are always new", async ({ ds, register }) => {
  const body = {
    images: [{ uri: "s3://bucket/anon.jpg" }, {
      uri: "s3://bucket/anon.jpg",
      external_id: null,
    }],
  };
  const first = await register(ds, body);
  assert.equal(first.status, 200);
  assert.equal(first.body.created, 2);
  assert.deepEqual(first.body.images.map((i) => i.external_id), [null, null]);
  const again = await register(ds, body);
  assert.equal(again.body.created, 2);
  const ids = new Set([...first.body.images, ...again.body.images].map((i) => i.id));
  assert.equal(ids.size, 4);
});

withDataset(
  "images: the same external_id in two datasets is two images",
  async ({ h, ds, register }) => {
    const other = await createDataset(h);
    const a = await register(ds, {
      images: [{ uri: "s3://b/shared.jpg", external_id: "shared" }],
    });
    const b = await register(other, {
      images: [{ uri: "s3://b/shared.jpg", external_id: "shared" }],
    });
    assert.equal(a.body.created, 1);
    assert.equal(b.body.created, 1);
    assert.notEqual(a.body.images[0].id, b.body.images[0].id);
    const got = await h.req("GET", `/api/v1/images/${b.body.images[0].id}`);
    assert.equal(got.body.dataset_id, other);
  },
);

withDataset(
  "images: two concurrent registrations of one batch agree on the ids",
  async ({ ds, register }) => {
    const images = batch(500, "race");
    const [x, y] = await Promise.all([register(ds, { images }), register(ds, { images })]);
    assert.equal(x.status, 200, JSON.stringify(x.body));
    assert.equal(y.status, 200, JSON.stringify(y.body));
    assert.equal(x.body.created + y.body.created, 500);
    assert.deepEqual(x.body.images, y.body.images);
  },
);

withDataset(
  "images: uri schemes other than s3, gs, http(s), file are rejected",
  async ({ h, ds, register }) => {
    const count = await imageCount(h, ds);
    for (const uri of ["ftp://host/x.jpg", "foo", "", " ", "s3://", "s3://bucket/a b.jpg", 5]) {
      assertError(await register(ds, { images: [{ uri }] }), 400, "validation_failed");
    }
    assertError(await register(ds, { images: [{}] }), 400, "validation_failed");
    assert.equal(await imageCount(h, ds), count);
  },
);

withDataset(
  "images: one bad item rejects the whole batch and writes nothing",
  async ({ h, ds, register }) => {
    const count = await imageCount(h, ds);
    const images: unknown[] = batch(1000, "atomic");
    images[637] = { uri: "ftp://nope/x.jpg", external_id: "bad" };
    const res = await register(ds, { images });
    assertError(res, 400, "validation_failed");
    assert.ok(
      res.body.error.details.some((d: { path: string }) => d.path === "body.images.637.uri"),
      JSON.stringify(res.body.error.details),
    );
    assert.match(res.body.error.message, /images\.637\.uri/);
    assert.equal(await imageCount(h, ds), count);
    const [{ n }] = await h
      .db`SELECT count(*)::int AS n FROM images WHERE external_id LIKE 'atomic-%'`;
    assert.equal(n, 0);
  },
);

withDataset("images: every field is validated", async ({ h, ds, register }) => {
  const count = await imageCount(h, ds);
  const uri = "s3://bucket/v.jpg";
  const bad: [string, unknown][] = [
    ["metadata array", { uri, metadata: [1, 2] }],
    ["metadata string", { uri, metadata: "x" }],
    ["metadata number", { uri, metadata: 5 }],
    ["metadata null", { uri, metadata: null }],
    ["metadata NUL value", { uri, metadata: { note: "a\u0000b" } }],
    ["metadata NUL key", { uri, metadata: { ["a\u0000"]: 1 } }],
    ["metadata NUL nested", { uri, metadata: { a: [{ b: "\u0000" }] } }],
    ["metadata over 16 KiB", { uri, metadata: { blob: "x".repeat(16 * 1024) } }],
    ["metadata over 16 KiB in UTF-8", { uri, metadata: { blob: "é".repeat(9000) } }],
    ["width 0", { uri, width: 0 }],
    ["width negative", { uri, width: -5 }],
    ["width fractional", { uri, width: 10.5 }],
    ["width string", { uri, width: "10" }],
    ["width huge", { uri, width: 1_000_001 }],
    ["height 0", { uri, height: 0 }],
    ["height fractional", { uri, height: 0.5 }],
    ["priority string", { uri, priority: "high" }],
    ["priority null", { uri, priority: null }],
    ["external_id blank", { uri, external_id: "  " }],
    ["external_id number", { uri, external_id: 7 }],
    ["external_id NUL", { uri, external_id: "a\u0000" }],
    ["external_id too long", { uri, external_id: "e".repeat(257) }],
    ["uri with NUL", { uri: "s3://bucket/a\u0000.jpg" }],
    ["uri too long", { uri: `s3://bucket/${"u".repeat(2048)}` }],
    ["unknown field", { uri, colour: "red" }],
  ];
  for (const [what, item] of bad) {
    const res = await register(ds, { images: [item] });
    assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
    assertError(res, 400, "validation_failed");
  }
  for (const body of [{}, { images: [] }, { images: "x" }, [], null, { images: [], x: 1 }]) {
    assertError(await register(ds, body), 400);
  }
  assert.equal(await imageCount(h, ds), count, "nothing was written by rejected requests");
});

withDataset(
  "images: a body that is not JSON: the answers of every other route",
  async ({ h, ds }) => {
    // registerImages reads its own body (lib/http/openapi.ts readJsonBody); createDataset's is read
    // by zod-openapi's validator. The same bodies get the same status and error code.
    const cases: [string, string, Record<string, string>][] = [
      ["malformed", "{not json", {}],
      ["text/plain", `{"images":[{"uri":"s3://b/t.jpg"}]}`, { "content-type": "text/plain" }],
      ["no content type", `{"images":[{"uri":"s3://b/t.jpg"}]}`, { "content-type": "" }],
      ["JSON with parameters", "{}", { "content-type": "application/json; charset=utf-8" }],
      ["a +json type", "{}", { "content-type": "application/vnd.api+json" }],
    ];
    for (const [what, body, headers] of cases) {
      const ours = await h.req("POST", `/api/v1/datasets/${ds}/images`, body, headers);
      const theirs = await h.req("POST", "/api/v1/datasets", body, headers);
      assert.equal(ours.status, theirs.status, `${what}: ${JSON.stringify(ours.body)}`);
      assert.equal(ours.body.error?.code, theirs.body.error?.code, what);
      assert.ok(ours.status === 400 || ours.status === 415, `${what}: ${ours.status}`);
    }
    // A body cut off while it is read (the client hung up): what Deno reports then. With a
    // declared length the route reads the body; without, the body limit reads it first.
    const cutOff = async (path: string, length?: number) => {
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('{"images":[{"uri":"s3://b/'));
          controller.error(new Deno.errors.BadResource("Cannot read body"));
        },
      });
      const headers: Record<string, string> = {
        authorization: `Bearer ${h.admin.token}`,
        "content-type": "application/json",
      };
      if (length !== undefined) headers["content-length"] = String(length);
      const res = await h.app.request(path, { method: "POST", body, headers });
      return { status: res.status, body: await res.json() };
    };
    for (const length of [500, undefined]) {
      const ours = await cutOff(`/api/v1/datasets/${ds}/images`, length);
      const theirs = await cutOff("/api/v1/datasets", length);
      assert.equal(ours.status, 400, `${length}: ${JSON.stringify(ours.body)}`);
      assert.equal(theirs.status, 400, `${length}: ${JSON.stringify(theirs.body)}`);
      assert.equal(ours.body.error.code, theirs.body.error.code);
    }
  },
);

withDataset("images: a non-finite priority is rejected", async ({ ds, register }) => {
  for (const p of ["1e999", "-1e999"]) {
    const res = await register(ds, `{"images":[{"uri":"s3://b/inf.jpg","priority":${p}}]}`);
    assertError(res, 400, "validation_failed");
    assert.match(res.body.error.details[0].path, /^body\.images\.0\.priority/);
  }
  const res = await register(ds, `{"images":[{"uri":"s3://b/big.jpg","priority":-1e308}]}`);
  assert.equal(res.status, 200, "a large finite priority is fine");
});

withDataset(
  "images: metadata within bounds round-trips, escapes included",
  async ({ h, ds, register }) => {
    const metadata = {
      camera: "front",
      nested: { list: [1, 2.5, "three", null, true] },
      windows: "C:\\u0000dir",
      unicode: "日本語 😀",
      big: "x".repeat(15 * 1024),
    };
    const res = await register(ds, { images: [{ uri: "s3://b/meta.jpg", metadata }] });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const got = await h.req("GET", `/api/v1/images/${res.body.images[0].id}`);
    assert.deepEqual(got.body.metadata, metadata);
  },
);

withDataset("images: strings of megabytes are a 4xx, never a 500", async ({ h, ds, register }) => {
  const count = await imageCount(h, ds);
  const huge = "m".repeat(3 * 1024 * 1024);
  const items = [
    { uri: `s3://bucket/${huge}` },
    { uri: "s3://b/x.jpg", external_id: huge },
    { uri: "s3://b/x.jpg", metadata: { [huge]: 1 } },
    { uri: "s3://b/x.jpg", metadata: { k: huge } },
    { uri: "s3://b/x.jpg", [huge]: 1 },
    { uri: "s3://b/x.jpg", external_id: "\ud800" + huge },
  ];
  for (const item of items) {
    const res = await register(ds, { images: [item] });
    assert.ok(res.status >= 400 && res.status < 500, `got ${res.status}`);
    assertError(res, res.status);
  }
  // Beyond the default 32 MiB body limit.
  const res = await register(ds, { images: [{ uri: "s3://b/x.jpg", note: "z".repeat(34e6) }] });
  assertError(res, 413, "payload_too_large");
  assert.equal(await imageCount(h, ds), count);
});

withDataset("images: lone surrogates never cause a 500", async ({ ds, register }) => {
  for (const metadata of [{ a: "\ud800" }, { ["\udc00"]: 1 }]) {
    const res = await register(ds, { images: [{ uri: "s3://b/s.jpg", metadata }] });
    assert.ok(res.status === 200 || res.status === 400, `got ${res.status}`);
  }
});

withDataset(
  "images: a 10,000-image batch succeeds and 10,001 is rejected",
  async ({ h, register }) => {
    const big = await createDataset(h, "big");
    const images = batch(10_000, "big");
    const res = await register(big, { images });
    assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 500));
    assert.equal(res.body.created, 10_000);
    assert.equal(res.body.existing, 0);
    assert.equal(res.body.images.length, 10_000);
    assert.deepEqual(res.body.images.map((i) => i.external_id), images.map((i) => i.external_id));
    const ids = res.body.images.map((i) => i.id);
    assertAscending(ids);
    assert.equal(await imageCount(h, big), 10_000);
    const listed = await listAll(h, big, 1000);
    assert.deepEqual(listed.map((i) => i.id), ids, "listing order is registration order");

    const tooMany = await register(big, { images: batch(10_001, "toomany") });
    assertError(tooMany, 400, "validation_failed");
    assert.equal(tooMany.body.error.details[0].path, "body.images");
    assert.equal(await imageCount(h, big), 10_000);
  },
);

withDataset("images: an unknown dataset is 404 and an invalid id 400", async ({ register }) => {
  const body = { images: [{ uri: "s3://b/x.jpg" }] };
  assertError(await register("999999", body), 404, "not_found");
  assertError(await register("abc", body), 400, "validation_failed");
  // Over several chunks: validation still comes first, then the 404.
  const many = batch(REGISTER_CHUNK * 2 + 5, "nods");
  assertError(await register("999999", { images: many }), 404, "not_found");
  many[REGISTER_CHUNK + 1] = { ...many[0], width: 0 };
  const bad = await register("999999", { images: many });
  assertError(bad, 400, "validation_failed");
  assert.equal(bad.body.error.details[0].path, `body.images.${REGISTER_CHUNK + 1}.width`);
});

// registerImages validates and inserts a batch REGISTER_CHUNK items at a time, in one
// transaction: what one chunk holds must decide for the whole batch.
withDataset(
  "images: a batch of several chunks is all or nothing, whichever chunk decides",
  async ({ h, register }) => {
    const chunked = await createDataset(h, "chunked");
    const n = REGISTER_CHUNK * 2 + 500;
    const last = n - 3;

    // An invalid item in the last chunk, after two chunks were inserted: nothing is written.
    const invalid: unknown[] = batch(n, "ck");
    invalid[last] = { uri: "ftp://nope/x.jpg", external_id: "ck-bad" };
    const refused = await register(chunked, { images: invalid });
    assertError(refused, 400, "validation_failed");
    assert.deepEqual(refused.body.error.details.map((d) => d.path), [
      `body.images.${last}.uri`,
    ]);
    assert.equal(await imageCount(h, chunked), 0);

    // Invalid items in every chunk: the first 50 issues, in batch order.
    const everywhere: unknown[] = batch(n, "ck");
    const badAt = Array.from({ length: 60 }, (_, k) => k * Math.floor(n / 60));
    for (const i of badAt) everywhere[i] = { uri: "s3://b/x.jpg", width: -1, height: 1 };
    const many = await register(chunked, { images: everywhere });
    assertError(many, 400, "validation_failed");
    assert.deepEqual(
      many.body.error.details.map((d) => d.path),
      badAt.slice(0, 50).map((i) => `body.images.${i}.width`),
    );
    assert.equal(await imageCount(h, chunked), 0);

    // One external_id already registered, in the last chunk: the batch goes through the
    // statement that skips it, and the chunks inserted before are not there twice.
    const images = batch(n, "ck");
    const early = await register(chunked, { images: [images[last]] });
    assert.equal(early.body.created, 1);
    // A repeat of the first item in the second chunk: one image, answered twice.
    images[REGISTER_CHUNK + 7] = { ...images[0], uri: "s3://bucket/ck/repeat.jpg" };
    const res = await register(chunked, { images });
    assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 500));
    assert.equal(res.body.created, n - 2);
    assert.equal(res.body.existing, 2);
    assert.equal(res.body.images[last].id, early.body.images[0].id);
    assert.equal(res.body.images[REGISTER_CHUNK + 7].id, res.body.images[0].id);
    assert.equal(await imageCount(h, chunked), n - 1);
    const repeat = await h.req("GET", `/api/v1/images/${res.body.images[0].id}`);
    assert.equal(repeat.body.uri, images[0].uri, "the first occurrence wins");

    // The same, all new (the pipelined inserts themselves): ids in order, the repeat once.
    const fresh = batch(n, "ck2");
    fresh[REGISTER_CHUNK * 2 + 1] = { ...fresh[1] };
    const all = await register(chunked, { images: fresh });
    assert.equal(all.status, 200, JSON.stringify(all.body).slice(0, 500));
    assert.equal(all.body.created, n - 1);
    assert.equal(all.body.existing, 1);
    const ids = all.body.images.map((i) => i.id);
    assert.equal(ids[REGISTER_CHUNK * 2 + 1], ids[1]);
    assertAscending(ids.filter((_, i) => i !== REGISTER_CHUNK * 2 + 1));
    assert.equal(await imageCount(h, chunked), 2 * n - 2);
  },
);

withDataset("images: getImage returns every field", async ({ h, ds, register }) => {
  const res = await register(ds, {
    images: [{
      uri: "s3://bucket/full.jpg",
      external_id: "full",
      width: 1920,
      height: 1080,
      priority: 2.5,
      metadata: { camera: "front" },
    }, { uri: "s3://bucket/bare.jpg" }],
  });
  const [full, bare] = res.body.images;
  const got = await h.req("GET", `/api/v1/images/${full.id}`);
  assert.equal(got.status, 200);
  const { created_at, ...rest } = got.body;
  assert.deepEqual(rest, {
    id: full.id,
    dataset_id: ds,
    external_id: "full",
    uri: "s3://bucket/full.jpg",
    width: 1920,
    height: 1080,
    priority: 2.5,
    metadata: { camera: "front" },
    status: "pending",
  });
  assert.ok(Math.abs(Date.parse(created_at) - Date.now()) < 60_000, created_at);

  const b = await h.req("GET", `/api/v1/images/${bare.id}`);
  assert.equal(b.body.external_id, null);
  assert.equal(b.body.width, null);
  assert.equal(b.body.height, null);
  assert.equal(b.body.priority, 0);
  assert.deepEqual(b.body.metadata, {});
  assert.equal(b.body.status, "pending");

  assertError(await h.req("GET", "/api/v1/images/999999999"), 404, "not_found");
  assertError(await h.req("GET", "/api/v1/images/abc"), 400, "validation_failed");
  assertError(await h.req("GET", "/api/v1/images/0"), 400, "validation_failed");
  assertError(await h.req("GET", "/api/v1/images/-1"), 400, "validation_failed");
});

withDataset("images: updateImage changes priority and/or metadata", async ({ h, ds, register }) => {
  const res = await register(ds, {
    images: [{ uri: "s3://b/u.jpg", external_id: "upd", priority: 1, metadata: { a: 1 } }],
  });
  const id = res.body.images[0].id;
  let up = await h.req("PATCH", `/api/v1/images/${id}`, { priority: 7.25 });
  assert.equal(up.status, 200, JSON.stringify(up.body));
  assert.equal(up.body.priority, 7.25);
  assert.deepEqual(up.body.metadata, { a: 1 });

  up = await h.req("PATCH", `/api/v1/images/${id}`, { metadata: { b: "two" } });
  assert.equal(up.status, 200);
  assert.equal(up.body.priority, 7.25);
  assert.deepEqual(up.body.metadata, { b: "two" }, "metadata is replaced, not merged");

  up = await h.req("PATCH", `/api/v1/images/${id}`, { priority: -3, metadata: {} });
  assert.equal(up.status, 200);
  assert.equal(up.body.priority, -3);
  assert.deepEqual(up.body.metadata, {});
  assert.equal(up.body.external_id, "upd");
  assert.equal(up.body.uri, "s3://b/u.jpg");

  const got = await h.req("GET", `/api/v1/images/${id}`);
  assert.deepEqual(got.body, up.body);

  for (
    const body of [
      {},
      { uri: "s3://b/other.jpg" },
      { priority: 1, external_id: "x" },
      { priority: "1" },
      { priority: null },
      { metadata: null },
      { metadata: [1] },
      { metadata: { s: "\u0000" } },
    ]
  ) {
    assertError(await h.req("PATCH", `/api/v1/images/${id}`, body), 400, "validation_failed");
  }
  assertError(await h.req("PATCH", `/api/v1/images/${id}`, '{"priority":1e999}'), 400);
  assertError(await h.req("PATCH", "/api/v1/images/999999999", { priority: 1 }), 404);
  assertError(await h.req("PATCH", "/api/v1/images/abc", { priority: 1 }), 400);
  assert.equal((await h.req("GET", `/api/v1/images/${id}`)).body.priority, -3);
});

withDataset(
  "images: deleteImage removes the image; a second delete is 404",
  async ({ h, ds, register }) => {
    const res = await register(ds, { images: [{ uri: "s3://b/d.jpg", external_id: "del" }] });
    const id = res.body.images[0].id;
    const count = await imageCount(h, ds);
    const del = await h.req("DELETE", `/api/v1/images/${id}`);
    assert.equal(del.status, 204);
    assert.equal(del.body, "");
    assertError(await h.req("GET", `/api/v1/images/${id}`), 404, "not_found");
    assertError(await h.req("DELETE", `/api/v1/images/${id}`), 404, "not_found");
    assertError(await h.req("DELETE", "/api/v1/images/abc"), 400);
    assert.equal(await imageCount(h, ds), count - 1);

    // The external_id is free again: registering it makes a new image.
    const again = await register(ds, { images: [{ uri: "s3://b/d.jpg", external_id: "del" }] });
    assert.equal(again.body.created, 1);
    assert.notEqual(again.body.images[0].id, id);
  },
);

withApp(
  "images: a body over BODY_LIMIT_BYTES is 413 with the error shape",
  { config: { BODY_LIMIT_BYTES: "2048" } },
  async (small) => {
    const ds = await createDataset(small, "small");
    const path = `/api/v1/datasets/${ds}/images`;
    const body = JSON.stringify({ images: batch(40, "limit") });
    assert.ok(body.length > 2048);

    // Streamed (no content-length, as app.request sends it) and with a content-length.
    let res = await small.req("POST", path, body);
    assertError(res, 413, "payload_too_large");
    assert.match(res.body.error.message, /2048 bytes/);
    res = await small.req("POST", path, body, { "content-length": String(body.length) });
    assertError(res, 413, "payload_too_large");

    res = await small.req("POST", path, { images: batch(3, "ok") });
    assert.equal(res.status, 200, "a body under the limit is accepted");
    assert.equal(res.body.created, 3);
    assert.equal(await imageCount(small, ds), 3, "nothing else was written");
  },
);

withDataset(
  "images: listImages validates limit, cursor and dataset",
  async ({ h, ds, register }) => {
    assert.equal((await register(ds, { images: batch(150, "l") })).status, 200);
    const base = `/api/v1/datasets/${ds}/images`;
    for (const qs of ["limit=0", "limit=1001", "limit=abc", "limit=1.5", "limit=-1"]) {
      assertError(await h.req("GET", `${base}?${qs}`), 400, "validation_failed");
    }
    for (const cursor of ["abc", "0", "-5", "1.5", "9".repeat(19)]) {
      assertError(await h.req("GET", `${base}?cursor=${cursor}`), 400, "validation_failed");
    }
    assertError(await h.req("GET", "/api/v1/datasets/999999/images"), 404, "not_found");
    assertError(await h.req("GET", "/api/v1/datasets/abc/images"), 400);
    const def = await h.req("GET", base);
    assert.equal(def.status, 200);
    assert.equal(def.body.items.length, 100, "the default limit is 100");
    const max = await h.req("GET", `${base}?limit=1000`);
    assert.equal(max.status, 200);
  },
);

withDataset(
  "images: listImages pages by id; the last page has next_cursor null",
  async ({ h, register }) => {
    const pages = await createDataset(h, "pages");
    const reg = await register(pages, { images: batch(7, "p") });
    const ids = reg.body.images.map((i) => i.id);

    let res = await h.req("GET", `/api/v1/datasets/${pages}/images?limit=3`);
    assert.deepEqual(res.body.items.map((i: { id: string }) => i.id), ids.slice(0, 3));
    assert.equal(res.body.next_cursor, ids[2]);
    for (const item of res.body.items) assert.equal(item.dataset_id, pages);
    assert.equal(res.body.items[0].status, "pending");

    res = await h.req("GET", `/api/v1/datasets/${pages}/images?limit=3&cursor=${ids[2]}`);
    assert.deepEqual(res.body.items.map((i: { id: string }) => i.id), ids.slice(3, 6));
    res = await h.req("GET", `/api/v1/datasets/${pages}/images?limit=3&cursor=${ids[5]}`);
    assert.deepEqual(res.body.items.map((i: { id: string }) => i.id), ids.slice(6));
    assert.equal(res.body.next_cursor, null);

    // A page that ends exactly at the last image is the last page.
    res = await h.req("GET", `/api/v1/datasets/${pages}/images?limit=7`);
    assert.equal(res.body.items.length, 7);
    assert.equal(res.body.next_cursor, null);
    res = await h.req("GET", `/api/v1/datasets/${pages}/images?limit=4&cursor=${ids[2]}`);
    assert.equal(res.body.items.length, 4);
    assert.equal(res.body.next_cursor, null);

    // An empty dataset, and a cursor past the end.
    const empty = await createDataset(h, "empty");
    res = await h.req("GET", `/api/v1/datasets/${empty}/images`);
    assert.deepEqual(res.body, { items: [], next_cursor: null });
    res = await h.req("GET", `/api/v1/datasets/${pages}/images?cursor=${ids[6]}`);
    assert.deepEqual(res.body, { items: [], next_cursor: null });

    // Images of other datasets never appear.
    const all = await listAll(h, pages, 2);
    assert.deepEqual(all.map((i) => i.id), ids);
  },
);

withDataset(
  "images: listImages finds an image by external_id: a page of 0 or 1",
  async ({ h, register }) => {
    const mine = await createDataset(h, "by-external-id");
    const other = await createDataset(h, "by-external-id-other");
    const reg = await register(mine, { images: batch(5, "e") });
    await register(other, { images: [{ uri: "s3://b/o.jpg", external_id: "only-there" }] });
    const base = `/api/v1/datasets/${mine}/images`;
    const found = await h.req("GET", `${base}?external_id=e-3`);
    assert.equal(found.status, 200);
    assert.deepEqual(found.body.items.map((i: { id: string }) => i.id), [reg.body.images[3].id]);
    assert.equal(found.body.items[0].external_id, "e-3");
    assert.equal(found.body.items[0].uri, "s3://bucket/e/3.jpg");
    assert.equal(found.body.next_cursor, null);
    // Whatever the limit; an id the dataset does not have, or only another dataset has: none.
    const small = await h.req("GET", `${base}?external_id=e-3&limit=1`);
    assert.equal(small.body.items.length, 1);
    for (const missing of ["e-99", "only-there", "E-3", "e-3 "]) {
      const res = await h.req("GET", `${base}?external_id=${encodeURIComponent(missing)}`);
      assert.deepEqual(res.body, { items: [], next_cursor: null }, missing);
    }
    // With a cursor, as any page: after it or not at all.
    const ids = reg.body.images.map((i) => i.id);
    const before = await h.req("GET", `${base}?external_id=e-3&cursor=${ids[1]}`);
    assert.equal(before.body.items.length, 1);
    const past = await h.req("GET", `${base}?external_id=e-3&cursor=${ids[3]}`);
    assert.equal(past.body.items.length, 0);
    // Its form is an external_id's: not blank, no NUL, at most 256 characters.
    for (const bad of ["", " ", "%00", "x".repeat(257)]) {
      assertError(await h.req("GET", `${base}?external_id=${bad}`), 400, "validation_failed");
    }
    assertError(
      await h.req("GET", "/api/v1/datasets/999999/images?external_id=e-3"),
      404,
      "not_found",
    );
  },
);

withDataset(
  "images: paging while another connection keeps registering",
  async ({ h, register }) => {
    const live = await createDataset(h, "live");
    const before = await register(live, { images: batch(2000, "pre") });
    assert.equal(before.body.created, 2000);
    const existed = new Set(before.body.images.map((i) => i.id));

    // The writer uses its own pool, so its inserts commit on other connections while the
    // reader pages (real concurrency in PostgreSQL, not interleaving in one connection).
    const writerDb = connect(h.url, {
      max: 2,
      connectTimeoutSeconds: 10,
      statementTimeoutMs: 60_000,
    });
    // postgres.js installs its array serializers when a pool's first connection has fetched
    // the array types; a first statement that binds arrays can race that and send
    // "a,b,c" for a text[] (porsager/postgres#789). Warm the pool with a plain query first.
    await writerDb`SELECT 1`;
    let stop = false;
    let written = 0;
    let batches = 0;
    let firstBatch!: () => void;
    const firstBatchDone = new Promise<void>((resolve) => firstBatch = resolve);
    const writer = (async () => {
      try {
        // Bounded, so the reader always reaches the end even if the writer is faster.
        while (!stop && batches < 20) {
          const rows = await registerImages(
            writerDb,
            imageBatch(live, batch(150, "during", written), SEES_ALL),
          );
          assert.equal(rows.length, 150);
          written += 150;
          batches++;
          firstBatch();
        }
      } finally {
        firstBatch();
      }
    })();

    const seen: string[] = [];
    try {
      let cursor: string | null = null;
      let pages = 0;
      do {
        const qs: string = cursor ? `limit=37&cursor=${cursor}` : "limit=37";
        const res = await h.req("GET", `/api/v1/datasets/${live}/images?${qs}`);
        assert.equal(res.status, 200);
        for (const item of res.body.items) {
          assert.equal(item.dataset_id, live);
          seen.push(item.id);
        }
        cursor = res.body.next_cursor;
        assert.ok(pages < 1000, "paging does not terminate");
        // Make sure the writer has committed at least once while paging is under way.
        if (++pages === 2) await firstBatchDone;
      } while (cursor !== null);
    } finally {
      stop = true;
      await writer;
      await writerDb.end();
    }

    assert.ok(batches >= 1, "the writer committed during paging");
    assert.equal(new Set(seen).size, seen.length, "no id is seen twice");
    assertAscending(seen);
    const seenSet = new Set(seen);
    for (const id of existed) assert.ok(seenSet.has(id), `pre-existing image ${id} was missed`);
    assert.equal(await imageCount(h, live), 2000 + written);
  },
);

withDataset("images: setPriorities by id, by external_id, and mixed", async ({ h, register }) => {
  const other = await createDataset(h);
  const pr = await createDataset(h, "prio");
  const reg = await register(pr, { images: batch(6, "q") });
  const [a, b, c, d, e, f] = reg.body.images.map((i) => i.id);
  const otherImg = await register(other, { images: [{ uri: "s3://b/o.jpg", priority: 4 }] });
  const foreign = otherImg.body.images[0].id;

  let res = await h.req("PUT", `/api/v1/datasets/${pr}/priorities`, {
    priorities: [{ image_id: a, priority: 10 }, { image_id: b, priority: -1.5 }],
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(res.body, { updated: 2, not_found: [] });

  res = await h.req("PUT", `/api/v1/datasets/${pr}/priorities`, {
    priorities: [{ external_id: "q-2", priority: 20 }, { external_id: "q-3", priority: 30 }],
  });
  assert.deepEqual(res.body, { updated: 2, not_found: [] });

  res = await h.req("PUT", `/api/v1/datasets/${pr}/priorities`, {
    priorities: [
      { image_id: e, priority: 50 },
      { external_id: "missing", priority: 1 },
      { image_id: foreign, priority: 99 },
      { external_id: "q-5", priority: 60 },
      { image_id: "999999999999", priority: 1 },
      // Named twice (once by id, once by external_id): the last one wins.
      { image_id: a, priority: 11 },
      { external_id: "q-0", priority: 12 },
    ],
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.deepEqual(res.body, {
    updated: 3,
    not_found: [
      { external_id: "missing" },
      { image_id: foreign },
      { image_id: "999999999999" },
    ],
  });

  const expected: Record<string, number> = { [a]: 12, [b]: -1.5, [c]: 20, [d]: 30, [e]: 50 };
  expected[f] = 60;
  for (const [id, priority] of Object.entries(expected)) {
    const got = await h.req("GET", `/api/v1/images/${id}`);
    assert.equal(got.body.priority, priority, `image ${id}`);
  }
  const untouched = await h.req("GET", `/api/v1/images/${foreign}`);
  assert.equal(untouched.body.priority, 4, "another dataset's image is unchanged");
});

withDataset("images: setPriorities validates the body", async ({ h, ds, register }) => {
  const [a] = (await register(ds, {
    images: [{ uri: "s3://bucket/a.jpg", external_id: "a", priority: 0.5 }],
  })).body.images;
  const count = await imageCount(h, ds);
  const path = `/api/v1/datasets/${ds}/priorities`;
  const bad: unknown[] = [
    {},
    { priorities: [] },
    { priorities: [{ priority: 1 }] },
    { priorities: [{ image_id: "1", external_id: "a", priority: 1 }] },
    { priorities: [{ image_id: "abc", priority: 1 }] },
    { priorities: [{ image_id: 5, priority: 1 }] },
    { priorities: [{ external_id: "", priority: 1 }] },
    { priorities: [{ external_id: "a" }] },
    { priorities: [{ external_id: "a", priority: "1" }] },
    { priorities: [{ external_id: "a", priority: null }] },
    { priorities: [{ external_id: "a", priority: 1, extra: true }] },
    {
      priorities: Array.from(
        { length: 10_001 },
        (_, i) => ({ image_id: `${i + 1}`, priority: 1 }),
      ),
    },
  ];
  for (const body of bad) assertError(await h.req("PUT", path, body), 400, "validation_failed");
  for (const p of ["1e999", "-1e999"]) {
    const raw = `{"priorities":[{"external_id":"a","priority":${p}}]}`;
    assertError(await h.req("PUT", path, raw), 400, "validation_failed");
  }
  const got = await h.req("GET", `/api/v1/images/${a.id}`);
  assert.equal(got.body.priority, 0.5, "rejected requests change nothing");
  const body = { priorities: [{ external_id: "a", priority: 1 }] };
  assertError(await h.req("PUT", "/api/v1/datasets/999999/priorities", body), 404);
  assertError(await h.req("PUT", "/api/v1/datasets/abc/priorities", body), 400);
  assert.equal(await imageCount(h, ds), count);
});

withDataset("images: a 10,000-item setPriorities", async ({ h, register }) => {
  const big = await createDataset(h, "big-prio");
  const images = batch(10_000, "bp");
  const reg = await register(big, { images });
  assert.equal(reg.body.created, 10_000);
  const ids = reg.body.images.map((i) => i.id);
  const priorities = ids.map((id, i) =>
    i % 2 ? { image_id: id, priority: i } : { external_id: `bp-${i}`, priority: i }
  );
  const res = await h.req("PUT", `/api/v1/datasets/${big}/priorities`, { priorities });
  assert.equal(res.status, 200, JSON.stringify(res.body).slice(0, 500));
  assert.deepEqual(res.body, { updated: 10_000, not_found: [] });
  for (const i of [0, 1, 4321, 9999]) {
    const got = await h.req("GET", `/api/v1/images/${ids[i]}`);
    assert.equal(got.body.priority, i);
  }
});

// Width and height: both or neither, and bounds checked alike everywhere.

withDataset(
  "image size: registerImages refuses half a size, saying which half is missing",
  async ({ h, ds, register: registerBody }) => {
    const register = (images: unknown[]) => registerBody(ds, { images });
    const uri = "s3://bucket/half.jpg";
    const cases: [unknown, string][] = [
      [{ uri, width: 640 }, "body.images.0.height"],
      [{ uri, height: 480 }, "body.images.0.width"],
      [{ uri, width: 640, height: null }, "body.images.0.height"],
      [{ uri, width: null, height: 480 }, "body.images.0.width"],
    ];
    for (const [item, path] of cases) {
      const res = await register([{ uri: "s3://bucket/ok.jpg" }, item]);
      assertError(res, 400, "validation_failed");
      assert.deepEqual(res.body.error.details.map((d) => d.path), [path.replace(".0.", ".1.")]);
      assert.match(res.body.error.details[0].message, /both width and height, or neither/);
    }
    assert.equal(await imageCount(h, ds), 0, "the batch wrote nothing");
    const ok = await register([
      { uri, width: 640, height: 480 },
      { uri },
      { uri, width: null, height: null },
    ]);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
  },
);

withDataset(
  "image size: updateImage cannot set a size at all (it changes priority and metadata)",
  async ({ h, ds, register }) => {
    const [img] = (await register(ds, { images: [{ uri: "s3://bucket/u.jpg" }] })).body.images;
    for (const body of [{ width: 10 }, { width: 10, height: 10 }, { priority: 1, height: 3 }]) {
      const res = await h.req("PATCH", `/api/v1/images/${img.id}`, body);
      assertError(res, 400, "validation_failed");
      assert.ok(res.body.error.details.length > 0);
    }
    const got = await h.req("GET", `/api/v1/images/${img.id}`);
    assert.deepEqual([got.body.width, got.body.height, got.body.priority], [null, null, 0]);
  },
);

/**
 * Rows from before both-or-neither was required can still have one dimension: each known
 * dimension is then checked on its own, by the statements and by the route alike. Registers an
 * image with that external_id in `ds` and gives it that size.
 */
async function legacy(
  h: TestApp,
  ds: string,
  externalId: string,
  width: number | null,
  height: number | null,
): Promise<string> {
  const [img] = (await h.req<Registered>("POST", `/api/v1/datasets/${ds}/images`, {
    images: [{ uri: `s3://bucket/${externalId}.jpg`, external_id: externalId }],
  })).body.images;
  await h.db`UPDATE images SET width = ${width}, height = ${height} WHERE id = ${img.id}`;
  return img.id;
}

const model = { name: "m", version: "1" };
const bbox = (x: number, y: number) => ({
  type: "bbox",
  label: "cat",
  x,
  y,
  width: 1,
  height: 1,
});

withDataset(
  "image size: a machine annotation outside the one known dimension: 422, not 409",
  async ({ h, ds }) => {
    const machine = await h.user("machine");
    const wide = await legacy(h, ds, "width-only", 100, null);
    let res = await machine.req("POST", `/api/v1/images/${wide}/annotations`, {
      model,
      shapes: [bbox(150, 5)],
    });
    assertError(res, 422, "out_of_bounds");
    assert.match(res.body.error.message, /outside the 100x\? image/);
    res = await machine.req("POST", `/api/v1/images/${wide}/annotations`, {
      model,
      shapes: [bbox(50, 100_000)],
    });
    assert.equal(res.status, 201, "the unknown height bounds nothing");

    const tall = await legacy(h, ds, "height-only", null, 100);
    res = await machine.req("POST", `/api/v1/images/${tall}/annotations`, {
      model,
      shapes: [bbox(5, 150)],
    });
    assertError(res, 422, "out_of_bounds");
  },
);

withDataset(
  "image size: predictions in bulk: the same check, and nothing written",
  async ({ h, ds }) => {
    const machine = await h.user("machine");
    await legacy(h, ds, "width-only", 100, null);
    await legacy(h, ds, "height-only", null, 100);
    const before = (await h.db`SELECT count(*)::int AS n FROM annotations`)[0].n;
    const res = await machine.req("POST", `/api/v1/datasets/${ds}/predictions`, {
      predictions: [
        { external_id: "width-only", model, shapes: [bbox(50, 100_000)] },
        { external_id: "width-only", model, shapes: [bbox(150, 5)] },
        { external_id: "height-only", model, shapes: [bbox(5, 150)] },
      ],
    });
    assertError(res, 422, "out_of_bounds");
    assert.deepEqual(
      res.body.error.details.map((d: { path: string }) => d.path),
      ["body.predictions.1.shapes.0", "body.predictions.2.shapes.0"],
    );
    assert.equal((await h.db`SELECT count(*)::int AS n FROM annotations`)[0].n, before);
  },
);

withApp(
  "image size: a human annotation with a claim: 422 out_of_bounds, not a claim error",
  async (h) => {
    const only = await createDataset(h);
    const [img] = (await h.req<Registered>("POST", `/api/v1/datasets/${only}/images`, {
      images: [{ uri: "s3://bucket/h.jpg" }],
    })).body.images;
    await h.db`UPDATE images SET width = 100, height = NULL WHERE id = ${img.id}`;
    const annotator = await h.user("annotator");
    const claim = await annotator.req("POST", `/api/v1/datasets/${only}/claims`);
    assert.equal(claim.status, 201, JSON.stringify(claim.body));
    const res = await annotator.req("POST", `/api/v1/images/${img.id}/annotations`, {
      claim_id: claim.body.claim.id,
      shapes: [bbox(150, 5)],
    });
    assertError(res, 422, "out_of_bounds");
    const ok = await annotator.req("POST", `/api/v1/images/${img.id}/annotations`, {
      claim_id: claim.body.claim.id,
      shapes: [bbox(50, 100_000)],
    });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
  },
);

Deno.test("registerImages answers what was committed, even when a delete races it", async () => {
  const h = await createTestApp();
  const other = connect(h.url, { max: 1, connectTimeoutSeconds: 10, statementTimeoutMs: 10_000 });
  try {
    const ds = await createDataset(h);
    // "y" is registered already, so the request's one-INSERT fast path fails (writes nothing)
    // and the batch goes through registerImages' statement, around which the race is staged.
    await h
      .db`INSERT INTO images (dataset_id, external_id, uri) VALUES (${ds}, 'y', 's3://b/y0.jpg')`;
    // The race, staged around the request's first registerImages statement: another batch
    // registers "x" and commits while the statement waits on that row (so the statement skips
    // it and cannot see it), then an admin deletes "x" before the request can look it up.
    let staged = false;
    const stage = async (run: () => Promise<unknown>) => {
      await other.unsafe("BEGIN");
      await other.unsafe(
        "INSERT INTO images (dataset_id, external_id, uri) VALUES ($1::bigint, 'x', 's3://b/x0.jpg')",
        [ds],
      );
      const statement = run();
      for (let i = 0;; i++) {
        const [{ n }] = await h.db`SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock'`;
        if (n > 0) break;
        if (i > 500) throw new Error("the statement never waited on the other batch");
        await new Promise((r) => setTimeout(r, 10));
      }
      await other.unsafe("COMMIT");
      const rows = await statement;
      await h.db`DELETE FROM images WHERE dataset_id = ${ds} AND external_id = 'x'`;
      return rows;
    };
    const racing = new Proxy(h.db, {
      get(target, prop, receiver) {
        if (prop !== "unsafe") return Reflect.get(target, prop, receiver);
        return (text: string, ...rest: unknown[]) => {
          // deno-lint-ignore no-explicit-any
          const run = () => (target.unsafe as any)(text, ...rest).then((r: unknown) => r);
          if (staged || !text.includes("-- name: RegisterImages")) return run();
          staged = true;
          return Object.assign(stage(run), { cancel: () => {} });
        };
      },
    }) as Db;
    const app = createApp({ db: racing, config: testConfig(), log: silentLogger });
    const res = await app.request(`/api/v1/datasets/${ds}/images`, {
      method: "POST",
      headers: { authorization: `Bearer ${h.admin.token}`, "content-type": "application/json" },
      body: JSON.stringify({
        images: [
          { uri: "s3://b/y.jpg", external_id: "y" },
          { uri: "s3://b/x.jpg", external_id: "x" },
        ],
      }),
    });
    const body = await res.json();
    assert.ok(staged, "the race was staged");
    assert.equal(res.status, 200, `the batch's "y" is committed: ${JSON.stringify(body)}`);
    const rows = await h.db`SELECT id::text, external_id, uri FROM images
      WHERE dataset_id = ${ds} ORDER BY external_id`;
    assert.deepEqual(
      body.images,
      [
        { id: rows[1].id, external_id: "y" },
        { id: rows[0].id, external_id: "x" },
      ],
      "every id in the answer is an image that exists",
    );
    assert.equal(rows[0].uri, "s3://b/x.jpg", `"x" was registered again, from this batch`);
    assert.equal(rows[1].uri, "s3://b/y0.jpg", `"y" kept its fields`);
    assert.equal(body.created, 1);
    assert.equal(body.existing, 1);
  } finally {
    await other.end({ timeout: 1 });
    await h.close();
  }
});

// insertNewImages: new ids in order, or nothing written when one is registered.

async function countImages(h: TestApp, ds: string): Promise<number> {
  const [{ n }] = await h.db`SELECT count(*)::int AS n FROM images WHERE dataset_id = ${ds}`;
  return n;
}

withDataset(
  "insertNewImages: answers one id per image, ascending in input order",
  async ({ h, ds }) => {
    const images = [...batch(3, "n"), { uri: "s3://b/anon.jpg" }];
    const ids = await insertNewImages(h.db, imageBatch(ds, images, SEES_ALL));
    assert.equal(ids.length, 4);
    assertAscending(ids);
    const rows = await h.db`SELECT id::text, external_id, priority, metadata, width
        FROM images WHERE dataset_id = ${ds} ORDER BY id`;
    assert.deepEqual(rows.map((r) => r.id), ids);
    assert.deepEqual(rows.map((r) => r.external_id), ["n-0", "n-1", "n-2", null]);
    assert.deepEqual(rows[3].metadata, {}, "metadata defaults to {}");
    assert.equal(rows[3].priority, 0, "priority defaults to 0");
    assert.equal(rows[3].width, null);
  },
);

withDataset(
  "insertNewImages: one registered external_id, even the last of 1,000: 23505, none written",
  async ({ h, ds }) => {
    assert.equal((await insertNewImages(h.db, imageBatch(ds, batch(3, "n"), SEES_ALL))).length, 3);
    const before = await countImages(h, ds);
    const images = [...batch(999, "m"), { uri: "s3://b/again.jpg", external_id: "n-1" }];
    await assert.rejects(
      () => insertNewImages(h.db, imageBatch(ds, images, SEES_ALL)),
      (e) => isPgError(e) && e.code === "23505" && e.constraint_name === IMAGES_EXTERNAL_ID_KEY,
    );
    assert.equal(await countImages(h, ds), before);
  },
);

withApp("insertNewImages: a dataset that does not exist: no ids, nothing written", async (h) => {
  assert.deepEqual(
    await insertNewImages(h.db, imageBatch("999999", batch(2, "gone"), SEES_ALL)),
    [],
  );
  const [{ n }] = await h.db`SELECT count(*)::int AS n FROM images WHERE dataset_id = 999999`;
  assert.equal(n, 0);
});
