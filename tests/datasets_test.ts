import assert from "node:assert/strict";
import { assertError, type TestApp, withApp } from "./harness.ts";

/** Creates the dataset "street scenes" ("dashcam frames"; labels car, person); returns its id. */
async function streetScenes(h: TestApp): Promise<string> {
  const res = await h.req("POST", "/api/v1/datasets", {
    name: "street scenes",
    description: "dashcam frames",
    labels: ["car", "person"],
  });
  assert.equal(res.status, 201);
  return res.body.id;
}

withApp("datasets: createDataset applies defaults and returns the dataset", async (h) => {
  const res = await h.req("POST", "/api/v1/datasets", {
    name: "street scenes",
    description: "dashcam frames",
    labels: ["car", "person"],
  });
  assert.equal(res.status, 201);
  assert.match(res.body.id, /^\d+$/);
  assert.equal(res.body.name, "street scenes");
  assert.equal(res.body.description, "dashcam frames");
  assert.deepEqual(res.body.labels, ["car", "person"]);
  assert.equal(res.body.annotations_per_image, 1);
  assert.equal(res.body.claim_ttl_seconds, 900);
  assert.equal(res.body.access, "members", "a new dataset is for its members");
  assert.ok(!Number.isNaN(Date.parse(res.body.created_at)));
});

withApp("datasets: a duplicate name is 409", async (h) => {
  await streetScenes(h);
  const res = await h.req("POST", "/api/v1/datasets", { name: "street scenes", labels: ["x"] });
  assertError(res, 409, "dataset_exists");
});

withApp("datasets: createDataset validates every field", async (h) => {
  await streetScenes(h);
  const bad: [string, unknown][] = [
    ["no labels", { name: "a", labels: [] }],
    ["labels missing", { name: "a" }],
    ["duplicate labels", { name: "a", labels: ["x", "x"] }],
    ["blank label", { name: "a", labels: ["  "] }],
    ["too many labels", { name: "a", labels: Array.from({ length: 1001 }, (_, i) => `l${i}`) }],
    ["label too long", { name: "a", labels: ["x".repeat(201)] }],
    ["name missing", { labels: ["x"] }],
    ["blank name", { name: " ", labels: ["x"] }],
    ["name wrong type", { name: 5, labels: ["x"] }],
    ["name with NUL", { name: "a\u0000b", labels: ["x"] }],
    ["huge name", { name: "n".repeat(3_000_000), labels: ["x"] }],
    ["overlap 0", { name: "a", labels: ["x"], annotations_per_image: 0 }],
    ["overlap 11", { name: "a", labels: ["x"], annotations_per_image: 11 }],
    ["overlap fractional", { name: "a", labels: ["x"], annotations_per_image: 1.5 }],
    ["ttl 29", { name: "a", labels: ["x"], claim_ttl_seconds: 29 }],
    ["ttl 86401", { name: "a", labels: ["x"], claim_ttl_seconds: 86401 }],
    ["unknown access", { name: "a", labels: ["x"], access: "public" }],
    ["unknown field", { name: "a", labels: ["x"], colour: "red" }],
    ["array body", [{ name: "a", labels: ["x"] }]],
    ["null body", null],
  ];
  for (const [what, body] of bad) {
    const res = await h.req("POST", "/api/v1/datasets", body);
    assertError(res, 400, "validation_failed");
    assert.ok(res.body.error.message.length > 0, what);
  }
  const list = await h.req("GET", "/api/v1/datasets");
  assert.equal(list.body.items.length, 1, "nothing was written by rejected requests");
});

withApp("datasets: malformed JSON is 400 and a wrong content type 415", async (h) => {
  assertError(await h.req("POST", "/api/v1/datasets", "{not json"), 400);
  assertError(
    await h.req("POST", "/api/v1/datasets", "name=a", { "content-type": "text/plain" }),
    415,
  );
});

withApp("datasets: getDataset adds image_count; unknown and invalid ids", async (h) => {
  const id = await streetScenes(h);
  const res = await h.req("GET", `/api/v1/datasets/${id}`);
  assert.equal(res.status, 200);
  assert.equal(res.body.image_count, 0);
  assertError(await h.req("GET", "/api/v1/datasets/999999"), 404, "not_found");
  assertError(await h.req("GET", "/api/v1/datasets/abc"), 400, "validation_failed");
  assertError(await h.req("GET", "/api/v1/datasets/99999999999999999999999"), 400);
});

withApp("datasets: listDatasets returns every dataset, oldest first", async (h) => {
  await streetScenes(h);
  await h.req("POST", "/api/v1/datasets", { name: "second", labels: ["a"] });
  const res = await h.req("GET", "/api/v1/datasets");
  assert.equal(res.status, 200);
  assert.deepEqual(res.body.items.map((d: { name: string }) => d.name), [
    "street scenes",
    "second",
  ]);
});

withApp("datasets: updateDataset changes fields and lets labels only grow", async (h) => {
  const id = await streetScenes(h);
  let res = await h.req("PATCH", `/api/v1/datasets/${id}`, {
    labels: ["car", "person", "bicycle"],
    claim_ttl_seconds: 60,
    annotations_per_image: 3,
  });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body.labels, ["car", "person", "bicycle"]);
  assert.equal(res.body.claim_ttl_seconds, 60);
  assert.equal(res.body.annotations_per_image, 3);
  assert.equal(res.body.description, "dashcam frames", "untouched fields stay");

  res = await h.req("PATCH", `/api/v1/datasets/${id}`, { labels: ["car", "truck"] });
  assertError(res, 409, "labels_append_only");
  assert.match(res.body.error.message, /"person"/);

  res = await h.req("PATCH", `/api/v1/datasets/${id}`, { description: null });
  assert.equal(res.status, 200);
  assert.equal(res.body.description, null);
  assert.deepEqual(res.body.labels, ["car", "person", "bicycle"]);

  assertError(await h.req("PATCH", `/api/v1/datasets/${id}`, {}), 400);
  assertError(await h.req("PATCH", `/api/v1/datasets/${id}`, { name: "renamed" }), 400);
  assertError(await h.req("PATCH", `/api/v1/datasets/${id}`, { claim_ttl_seconds: 5 }), 400);
  assertError(await h.req("PATCH", "/api/v1/datasets/424242", { description: "x" }), 404);
});

/** getDatasetStats statements running (its text names per_reviewer), and those on a lock. */
async function statsRunning(h: TestApp): Promise<{ n: number; waiting: number }> {
  const [row] = await h.db.unsafe(
    `SELECT count(*)::int AS n, count(*) FILTER (WHERE wait_event_type = 'Lock')::int AS waiting
     FROM pg_stat_activity
     WHERE datname = current_database() AND state = 'active' AND query LIKE '%per_reviewer%'
       AND pid <> pg_backend_pid()`,
  );
  return { n: row.n, waiting: row.waiting };
}

withApp(
  "datasets: getDatasetStats calls for a dataset share one pass at a time, each with its own access",
  async (h) => {
    const id = await streetScenes(h);
    const reg = await h.req("POST", `/api/v1/datasets/${id}/images`, {
      images: [{ uri: "s3://b/a.jpg" }, { uri: "s3://b/b.jpg" }, { uri: "s3://b/c.jpg" }],
    });
    assert.equal(reg.status, 200);
    const member = await h.user("annotator");
    assert.equal((await h.req("PUT", `/api/v1/datasets/${id}/members/${member.id}`)).status, 204);
    const outsider = await h.user("annotator");
    const path = `/api/v1/datasets/${id}/stats`;
    // The first pass waits on a table it reads, locked by another connection.
    const locker = await h.db.reserve();
    try {
      await locker.unsafe("BEGIN");
      await locker.unsafe("LOCK TABLE ended_reviews IN ACCESS EXCLUSIVE MODE");
      const first = member.req("GET", path);
      for (let i = 0; (await statsRunning(h)).waiting < 1; i++) {
        if (i > 200) throw new Error("the first pass never reached the lock");
        await new Promise((r) => setTimeout(r, 10));
      }
      // Eleven more while it waits, the outsider among them: none sends a statement of its own.
      const rest = [
        ...Array.from({ length: 5 }, () => member.req("GET", path)),
        outsider.req("GET", path),
        ...Array.from({ length: 5 }, () => h.req("GET", path)),
      ];
      for (let i = 0; i < 20; i++) {
        assert.deepEqual(await statsRunning(h), { n: 1, waiting: 1 }, "one pass at a time");
        await new Promise((r) => setTimeout(r, 10));
      }
      await locker.unsafe("COMMIT");
      const answers = [await first, ...await Promise.all(rest)];
      assertError(answers[6], 404, "not_found");
      const seen = answers.filter((_, i) => i !== 6);
      for (const a of seen) {
        assert.equal(a.status, 200);
        assert.deepEqual(a.body, seen[0].body);
      }
      assert.equal(seen[0].body.images, 3);
      assert.equal(seen[0].body.pending, 3);
    } finally {
      locker.release();
    }
    // Alone, the outsider is refused as before, and a call after a write counts it.
    assertError(await outsider.req("GET", path), 404, "not_found");
    await h.req("POST", `/api/v1/datasets/${id}/images`, { images: [{ uri: "s3://b/d.jpg" }] });
    assert.equal((await member.req("GET", path)).body.images, 4);
  },
);
