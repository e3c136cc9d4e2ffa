/**
 * Annotations over HTTP: who makes human and machine annotations, shape and label rules with
 * each rejection, predictions in bulk, the changes feed with late-committing writers, the
 * streamed exports and stats. Query-level behaviour is in tests/annotations_sql_test.ts.
 */
import assert from "node:assert/strict";
import { connect } from "../lib/db/pool.ts";
import { transaction } from "../lib/db/query.ts";
import { createMachineAnnotation } from "../sql/annotations/queries.ts";
import {
  assertError,
  createTestDb,
  pollFeed,
  type Res,
  type TestApp,
  type TestUser,
  withApp,
} from "./harness.ts";

let seq = 0;
const model = { name: "detector", version: "7" };

interface Annotations {
  h: TestApp;
  ann: TestUser;
  machine: TestUser;
  /** A dataset with labels cat, dog and bird and these images (priorities 0, -1, ...). */
  dataset(
    images: { width?: number; height?: number; external_id?: string }[],
  ): Promise<{ id: string; images: string[] }>;
  /** The annotator claims the dataset's next image and submits `body` with that claim. */
  // deno-lint-ignore no-explicit-any
  humanSubmit(u: TestUser, datasetId: string, body: object): Promise<Res<any>>;
  /** The dataset's annotations. */
  count(datasetId: string): Promise<number>;
}

/** A test on a fresh app with an annotator and a machine user. */
function withAnnotations(name: string, fn: (a: Annotations) => Promise<void>): void {
  withApp(name, async (h) => {
    const ann = await h.user("annotator");
    const machine = await h.user("machine");

    async function dataset(
      images: { width?: number; height?: number; external_id?: string }[],
    ): Promise<{ id: string; images: string[] }> {
      const ds = await h.req("POST", "/api/v1/datasets", {
        name: `ann-http-${++seq}`,
        access: "open",
        labels: ["cat", "dog", "bird"],
      });
      const reg = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
        images: images.map((i, n) => ({ uri: `s3://b/${seq}/${n}.jpg`, priority: -n, ...i })),
      });
      assert.equal(reg.status, 200, JSON.stringify(reg.body));
      return { id: ds.body.id, images: reg.body.images.map((i: { id: string }) => i.id) };
    }

    async function humanSubmit(u: TestUser, datasetId: string, body: object) {
      const c = await u.req("POST", `/api/v1/datasets/${datasetId}/claims`);
      assert.equal(c.status, 201);
      return u.req("POST", `/api/v1/images/${c.body.claim.image_id}/annotations`, {
        claim_id: c.body.claim.id,
        ...body,
      });
    }

    const count = async (datasetId: string) =>
      (await h.db.unsafe(`SELECT count(*)::int AS n FROM annotations WHERE dataset_id = $1`, [
        datasetId,
      ]))[0].n as number;
    await fn({ h, ann, machine, dataset, humanSubmit, count });
  });
}

withAnnotations(
  "annotations: an annotator's annotation is human, by the caller; body fields",
  async ({ ann, dataset, humanSubmit }) => {
    const ds = await dataset([{ width: 100, height: 50 }]);
    const shapes = [
      { type: "bbox", label: "cat", x: 0, y: 0, width: 100, height: 50, confidence: 0.5 },
      { type: "polygon", label: "dog", points: [[0, 0], [10, 0], [10, 10]] },
      { type: "point", label: "bird", x: 100, y: 50 },
    ];
    const res = await humanSubmit(ann, ds.id, { labels: ["cat"], shapes });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.deepEqual(Object.keys(res.body).sort(), [
      "author_id",
      "confidence",
      "created_at",
      "dataset_id",
      "id",
      "image_id",
      "labels",
      "model",
      "review_comment",
      "reviewed_at",
      "reviewed_by",
      "shapes",
      "source",
      "status",
    ]);
    assert.equal(res.body.source, "human");
    assert.equal(res.body.author_id, ann.id);
    assert.equal(res.body.model, null);
    assert.equal(res.body.confidence, null);
    assert.deepEqual(res.body.labels, ["cat"]);
    assert.deepEqual(res.body.shapes, shapes);
  },
);

withAnnotations(
  "annotations: an annotation with neither labels nor shapes must say empty: true",
  async ({ h, ann, machine, dataset, count }) => {
    const ds = await dataset([{}, {}]);
    const c = await ann.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    const url = `/api/v1/images/${c.body.claim.image_id}/annotations`;
    const claim_id = c.body.claim.id;
    for (const body of [{}, { labels: [] }, { labels: [], shapes: [] }, { empty: false }]) {
      const res = await ann.req("POST", url, { claim_id, ...body });
      assertError(res, 400, "validation_failed");
      assert.equal(res.body.error.details[0].path, "body.empty", JSON.stringify(body));
    }
    for (
      const body of [{ labels: ["cat"] }, {
        shapes: [{ type: "point", label: "cat", x: 1, y: 1 }],
      }]
    ) {
      const res = await ann.req("POST", url, { claim_id, ...body, empty: true });
      assertError(res, 400, "validation_failed");
      assert.match(res.body.error.message, /body\.empty: must not be true with labels or shapes/);
    }
    assert.equal(await count(ds.id), 0, "nothing written");
    const claim = await ann.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    assert.equal(claim.status, 200, "the claim is still the caller's");
    const res = await ann.req("POST", url, { claim_id, labels: [], empty: true });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.deepEqual([res.body.labels, res.body.shapes], [[], []]);
    assert.equal("empty" in res.body, false, "the answer has labels and shapes: both empty");
    // The same rule for machines and admins, and a false "empty" beside content is fine.
    const other = `/api/v1/images/${ds.images[1]}/annotations`;
    assertError(await machine.req("POST", other, { model }), 400, "validation_failed");
    assert.equal((await machine.req("POST", other, { model, empty: true })).status, 201);
    assertError(await h.req("POST", other, {}), 400, "validation_failed");
    assert.equal((await h.req("POST", other, { labels: ["dog"], empty: false })).status, 201);
  },
);

withAnnotations(
  "annotations: a prediction with neither labels nor shapes must say empty: true",
  async ({ machine, dataset, count }) => {
    const ds = await dataset([{ external_id: "a" }, { external_id: "b" }]);
    const url = `/api/v1/datasets/${ds.id}/predictions`;
    const res = await machine.req("POST", url, {
      predictions: [
        { external_id: "a", model, labels: ["cat"] },
        { external_id: "b", model },
        { external_id: "a", model, shapes: [], empty: false },
        { external_id: "b", model, labels: ["dog"], empty: true },
      ],
    });
    assertError(res, 400, "validation_failed");
    assert.deepEqual(res.body.error.details.map((d: { path: string }) => d.path), [
      "body.predictions.1.empty",
      "body.predictions.2.empty",
      "body.predictions.3.empty",
    ]);
    assert.equal(await count(ds.id), 0, "one bad item writes nothing");
    const ok = await machine.req("POST", url, {
      predictions: [
        { external_id: "a", model, labels: ["cat"] },
        { external_id: "b", model, empty: true },
      ],
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.created, 2);
  },
);

withAnnotations(
  "annotations: the body cannot choose the source or the author",
  async ({ ann, machine, dataset, count }) => {
    const ds = await dataset([{}]);
    const c = await ann.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    const url = `/api/v1/images/${c.body.claim.image_id}/annotations`;
    for (const extra of [{ source: "machine" }, { author_id: machine.id }]) {
      assertError(
        await ann.req("POST", url, { claim_id: c.body.claim.id, ...extra }),
        400,
        "validation_failed",
      );
    }
    assertError(
      await ann.req("POST", url, { claim_id: c.body.claim.id, model }),
      400,
      "validation_failed",
    );
    assertError(
      await ann.req("POST", url, { claim_id: c.body.claim.id, confidence: 0.3 }),
      400,
      "validation_failed",
    );
    const missing = await ann.req("POST", url, { labels: ["cat"] });
    assertError(missing, 400, "validation_failed");
    assert.match(missing.body.error.message, /claim_id/);
    assert.equal(await count(ds.id), 0, "nothing written");
  },
);

withAnnotations(
  "annotations: a machine's annotation is machine, with its model; no claim",
  async ({ h, machine, dataset }) => {
    const ds = await dataset([{ width: 10, height: 10 }]);
    const url = `/api/v1/images/${ds.images[0]}/annotations`;
    const res = await machine.req("POST", url, { model, confidence: 0.9, labels: ["dog"] });
    assert.equal(res.status, 201);
    assert.equal(res.body.source, "machine");
    assert.equal(res.body.author_id, machine.id);
    assert.deepEqual(res.body.model, model);
    assert.equal(res.body.confidence, 0.9);
    assertError(await machine.req("POST", url, { labels: ["dog"] }), 400, "validation_failed");
    assertError(
      await machine.req("POST", url, { model, claim_id: "1", labels: ["dog"] }),
      400,
      "validation_failed",
    );
    assertError(
      await machine.req("POST", url, { model, source: "human", labels: ["dog"] }),
      400,
      "validation_failed",
    );
    // A machine annotation neither completes the image nor uses a slot.
    const image = await h.req("GET", `/api/v1/images/${ds.images[0]}`);
    assert.equal(image.body.status, "pending");
    assertError(
      await machine.req("POST", "/api/v1/images/999999999/annotations", { model, empty: true }),
      404,
      "not_found",
    );
  },
);

withAnnotations(
  "annotations: an admin's correction is human and needs no claim",
  async ({ h, dataset }) => {
    const ds = await dataset([{}]);
    const res = await h.req("POST", `/api/v1/images/${ds.images[0]}/annotations`, {
      labels: ["bird"],
    });
    assert.equal(res.status, 201);
    assert.equal(res.body.source, "human");
    assert.equal(res.body.author_id, h.admin.id);
    assertError(
      await h.req("POST", `/api/v1/images/${ds.images[0]}/annotations`, {
        model,
        labels: ["bird"],
      }),
      400,
      "validation_failed",
    );
  },
);

withAnnotations(
  "annotations: labels must be the dataset's: 422 unknown_label, nothing written",
  async ({ ann, machine, dataset, count }) => {
    const ds = await dataset([{ width: 100, height: 100 }]);
    const url = `/api/v1/images/${ds.images[0]}/annotations`;
    const bad = await machine.req("POST", url, { model, labels: ["cat", "horse"] });
    assertError(bad, 422, "unknown_label");
    assert.equal(bad.body.error.details[0].path, "body.labels.1");
    const shape = { type: "point", label: "Cat", x: 1, y: 1 };
    const bad2 = await machine.req("POST", url, { model, shapes: [shape] });
    assertError(bad2, 422, "unknown_label");
    assert.equal(bad2.body.error.details[0].path, "body.shapes.0.label");
    // A human submit with a bad label keeps the claim open.
    const c = await ann.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    const human = await ann.req("POST", url, { claim_id: c.body.claim.id, labels: ["x"] });
    assertError(human, 422, "unknown_label");
    const ok = await ann.req("POST", url, { claim_id: c.body.claim.id, labels: ["cat"] });
    assert.equal(ok.status, 201);
    assert.equal(await count(ds.id), 1);
  },
);

withAnnotations(
  "annotations: coordinates inside the image when its size is known",
  async ({ machine, dataset, count }) => {
    const ds = await dataset([{ width: 100, height: 50 }, {}]);
    const [sized, unsized] = ds.images;
    const outside = [
      { type: "bbox", label: "cat", x: 50, y: 0, width: 51, height: 10 },
      { type: "bbox", label: "cat", x: 0, y: 45, width: 10, height: 6 },
      { type: "point", label: "cat", x: 101, y: 0 },
      { type: "polygon", label: "cat", points: [[0, 0], [10, 0], [10, 51]] },
    ];
    for (const shape of outside) {
      const res = await machine.req("POST", `/api/v1/images/${sized}/annotations`, {
        model,
        shapes: [shape],
      });
      assertError(res, 422, "out_of_bounds");
      assert.equal(res.body.error.details[0].path, "body.shapes.0");
    }
    // Unknown size: no bound to check against.
    for (const shape of outside) {
      const res = await machine.req("POST", `/api/v1/images/${unsized}/annotations`, {
        model,
        shapes: [shape],
      });
      assert.equal(res.status, 201);
    }
    assert.equal(await count(ds.id), outside.length);
  },
);

withAnnotations(
  "annotations: shapes that are malformed are 400",
  async ({ machine, dataset, count }) => {
    const ds = await dataset([{ width: 100, height: 100 }]);
    const url = `/api/v1/images/${ds.images[0]}/annotations`;
    const bad: unknown[] = [
      { type: "bbox", label: "cat", x: -1, y: 0, width: 1, height: 1 },
      { type: "bbox", label: "cat", x: 0, y: 0, width: 0, height: 1 },
      { type: "bbox", label: "cat", x: 0, y: 0, width: "1", height: 1 },
      { type: "bbox", label: "cat", x: 0, y: 0, width: 1 },
      { type: "bbox", label: "cat", x: 0, y: 0, width: 1, height: 1, rotation: 3 },
      { type: "polygon", label: "cat", points: [[0, 0], [1, 1]] },
      { type: "polygon", label: "cat", points: [[0, 0], [1, 1], [2]] },
      { type: "point", label: "", x: 1, y: 1 },
      { type: "point", label: "cat", x: 1, y: 1, confidence: 1.5 },
      { type: "circle", label: "cat", x: 1, y: 1 },
      "bbox",
    ];
    for (const shape of bad) {
      const res = await machine.req("POST", url, { model, shapes: [shape] });
      assertError(res, 400, "validation_failed");
    }
    for (const text of [`{"model":{"name":"m","version":"1"},"confidence":1e999}`, `{"model":`]) {
      assertError(await machine.req("POST", url, text), 400);
    }
    assertError(await machine.req("POST", url, { model, confidence: 2 }), 400);
    assert.equal(await count(ds.id), 0);
  },
);

withAnnotations(
  "annotations: predictions in bulk by id and external_id, with not_found",
  async ({ machine, dataset }) => {
    const ds = await dataset([
      { external_id: "a", width: 100, height: 100 },
      { external_id: "b" },
    ]);
    const res = await machine.req("POST", `/api/v1/datasets/${ds.id}/predictions`, {
      predictions: [
        { image_id: ds.images[0], model, confidence: 0.2, labels: ["cat"] },
        {
          external_id: "b",
          model,
          shapes: [{ type: "bbox", label: "dog", x: 500, y: 500, width: 1, height: 1 }],
        },
        { external_id: "nope", model, empty: true },
        { image_id: "999999999", model, empty: true },
      ],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.created, 2);
    assert.deepEqual(res.body.not_found, [{ external_id: "nope" }, { image_id: "999999999" }]);
    const list = await machine.req("GET", `/api/v1/images/${ds.images[1]}/annotations`);
    assert.equal(list.body.items.length, 1);
    assert.equal(list.body.items[0].source, "machine");
    assert.deepEqual(list.body.items[0].model, model);
  },
);

withAnnotations(
  "annotations: a batch with one bad prediction writes nothing",
  async ({ machine, dataset, count }) => {
    const ds = await dataset([{ external_id: "a", width: 10, height: 10 }]);
    const url = `/api/v1/datasets/${ds.id}/predictions`;
    const good = { external_id: "a", model, labels: ["cat"] };
    const outside = {
      external_id: "a",
      model,
      shapes: [{ type: "point", label: "cat", x: 11, y: 1 }],
    };
    const res = await machine.req("POST", url, { predictions: [good, outside] });
    assertError(res, 422, "out_of_bounds");
    assert.equal(res.body.error.details[0].path, "body.predictions.1.shapes.0");
    assertError(
      await machine.req("POST", url, {
        predictions: [good, { ...good, labels: ["zebra"] }],
      }),
      422,
      "unknown_label",
    );
    assertError(
      await machine.req("POST", url, { predictions: [good, { model }] }),
      400,
      "validation_failed",
    );
    assertError(
      await machine.req("POST", url, {
        predictions: [{ ...good, image_id: ds.images[0] }],
      }),
      400,
      "validation_failed",
    );
    assertError(await machine.req("POST", url, { predictions: [] }), 400);
    assertError(
      await machine.req("POST", url, { predictions: Array(10_001).fill(good) }),
      400,
      "validation_failed",
    );
    assertError(
      await machine.req("POST", "/api/v1/datasets/999999999/predictions", {
        predictions: [good],
      }),
      404,
    );
    assert.equal(await count(ds.id), 0);
    const ok = await machine.req("POST", url, { predictions: Array(10_000).fill(good) });
    assert.equal(ok.body.created, 10_000);
  },
);

withAnnotations(
  "annotations: a human submit out of bounds is 422 and keeps the claim",
  async ({ h, ann, dataset, count }) => {
    const ds = await dataset([{ width: 100, height: 50 }]);
    const c = await ann.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    assert.equal(c.status, 201);
    const claim = c.body.claim;
    const url = `/api/v1/images/${claim.image_id}/annotations`;
    for (
      const shape of [
        { type: "bbox", label: "cat", x: 90, y: 0, width: 11, height: 10 },
        { type: "point", label: "cat", x: 10, y: 51 },
        { type: "polygon", label: "cat", points: [[0, 0], [101, 0], [50, 40]] },
      ]
    ) {
      const res = await ann.req("POST", url, { claim_id: claim.id, shapes: [shape] });
      assertError(res, 422, "out_of_bounds");
      assert.equal(res.body.error.details[0].path, "body.shapes.0");
    }
    assert.equal(await count(ds.id), 0, "nothing written");
    const [row] = await h.db.unsafe(
      "SELECT active, end_reason FROM claims WHERE id = $1::bigint",
      [claim.id],
    );
    assert.deepEqual({ ...row }, { active: true, end_reason: null }, "the claim stays active");
    const other = await h.user("annotator");
    const taken = await other.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    assert.equal(taken.status, 204, "the image stays held by the claim");
    const again = await ann.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    assert.equal(again.status, 200, "claiming again returns the same live claim");
    assert.equal(again.body.claim.id, claim.id);
    const ok = await ann.req("POST", url, {
      claim_id: claim.id,
      shapes: [{ type: "bbox", label: "cat", x: 90, y: 0, width: 10, height: 50 }],
    });
    assert.equal(ok.status, 201, "the same claim submits once the shape fits");
  },
);

withAnnotations(
  "annotations: renewing a completed claim is 409 claim_completed",
  async ({ h, ann, dataset }) => {
    const ds = await dataset([{}]);
    const c = await ann.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    const claim = c.body.claim;
    const done = await ann.req("POST", `/api/v1/images/${claim.image_id}/annotations`, {
      claim_id: claim.id,
      labels: ["cat"],
    });
    assert.equal(done.status, 201);
    const renew = await ann.req("POST", `/api/v1/claims/${claim.id}/renew`);
    assertError(renew, 409, "claim_completed");
    assert.match(renew.body.error.message, new RegExp(`claim ${claim.id}`));
    const [row] = await h.db.unsafe(
      "SELECT active, end_reason FROM claims WHERE id = $1::bigint",
      [claim.id],
    );
    assert.deepEqual({ ...row }, { active: false, end_reason: "completed" }, "still completed");
  },
);

withAnnotations(
  "annotations: an invalid source on the feed is 400",
  async ({ machine, dataset }) => {
    const ds = await dataset([{}]);
    const feed = `/api/v1/datasets/${ds.id}/annotations`;
    for (const source of ["robot", "", "HUMAN", "all"]) {
      const res = await machine.req("GET", `${feed}?source=${source}`);
      assertError(res, 400, "validation_failed");
      assert.ok(
        res.body.error.details.some((d: { path: string }) => d.path.includes("source")),
        JSON.stringify(res.body),
      );
    }
  },
);

withAnnotations(
  "annotations: listImageAnnotations filters by source",
  async ({ ann, machine, dataset, humanSubmit }) => {
    const ds = await dataset([{}]);
    await machine.req("POST", `/api/v1/images/${ds.images[0]}/annotations`, {
      model,
      empty: true,
    });
    assert.equal((await humanSubmit(ann, ds.id, { labels: ["dog"] })).status, 201);
    const url = `/api/v1/images/${ds.images[0]}/annotations`;
    const all = await machine.req("GET", url);
    assert.deepEqual(all.body.items.map((a: { source: string }) => a.source), [
      "machine",
      "human",
    ]);
    const human = await machine.req("GET", `${url}?source=human`);
    assert.deepEqual(human.body.items.map((a: { source: string }) => a.source), ["human"]);
    assertError(await machine.req("GET", `${url}?source=robot`), 400, "validation_failed");
    assertError(await machine.req("GET", "/api/v1/images/999999999/annotations"), 404);
  },
);

withAnnotations(
  "annotations: the feed pages with cursors and rejects bad ones",
  async ({ machine, dataset }) => {
    const ds = await dataset([{}]);
    const pred = { image_id: ds.images[0], model, empty: true };
    await machine.req("POST", `/api/v1/datasets/${ds.id}/predictions`, {
      predictions: Array(25).fill(pred),
    });
    const feed = `/api/v1/datasets/${ds.id}/annotations`;
    const seen: string[] = [];
    let after = "";
    // Pages of 10 until an empty page once all 25 came (an empty page before that is a poll held
    // back for a moment: see pollFeed).
    for (let i = 0; i < 250; i++) {
      const page = await machine.req("GET", `${feed}?limit=10${after && `&after=${after}`}`);
      assert.equal(page.status, 200);
      seen.push(...page.body.items.map((a: { id: string }) => a.id));
      after = page.body.next_cursor;
      if (!page.body.items.length) {
        assert.match(page.body.next_cursor, /^\d+\.0$/, "an empty page moves the cursor on");
        if (seen.length >= 25) break;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    assert.equal(seen.length, 25);
    assert.equal(new Set(seen).size, 25);
    // A row written after the empty page is delivered from the cursor it handed out (another
    // model's: the same model's would also supersede, and so deliver again, its current one).
    await machine.req("POST", `/api/v1/datasets/${ds.id}/predictions`, {
      predictions: [{ ...pred, model: { name: "other", version: "1" } }],
    });
    const more = await pollFeed(machine, feed, after, 1);
    assert.equal(more.items.length, 1);
    assert.ok(!seen.includes(more.items[0].id));
    for (const bad of ["x", "1", "1.2.3", "-1.1", "99999999999999999999999.1"]) {
      assertError(await machine.req("GET", `${feed}?after=${bad}`), 400, "validation_failed");
    }
    assertError(await machine.req("GET", `${feed}?limit=0`), 400);
    assertError(await machine.req("GET", `${feed}?limit=1001`), 400);
    assertError(await machine.req("GET", "/api/v1/datasets/999999999/annotations"), 404);
    const empty = await machine.req("GET", `${feed}?source=human`);
    assert.deepEqual(empty.body.items, []);
    assert.match(empty.body.next_cursor, /^\d+\.0$/);
  },
);

withAnnotations(
  "annotations: the feed never skips a row committed after later ones",
  async ({ h, machine, dataset }) => {
    const ds = await dataset([{}]);
    const feed = `/api/v1/datasets/${ds.id}/annotations`;
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let inserted!: () => void;
    const insertedP = new Promise<void>((r) => (inserted = r));
    // An early transaction inserts, then stays open while later rows commit.
    const early = transaction(h.db, async (tx) => {
      await createMachineAnnotation(tx, {
        caller_role: "machine",
        image_id: ds.images[0],
        author_id: machine.id,
        model,
        confidence: null,
        labels: ["cat"],
        shapes: [],
      });
      inserted();
      await held;
    });
    await insertedP;
    // Other models: a push of the early transaction's model would wait for it (one current
    // prediction per model on an image).
    for (let i = 0; i < 3; i++) {
      const res = await machine.req("POST", `/api/v1/images/${ds.images[0]}/annotations`, {
        model: { name: `later-${i}`, version: "1" },
        labels: ["dog"],
      });
      assert.equal(res.status, 201);
    }
    const seen: string[] = [];
    const record = (items: { labels: string[] }[]) => seen.push(...items.map((a) => a.labels[0]));
    const poll = async (after: string | null) => {
      const page = await machine.req("GET", `${feed}${after ? `?after=${after}` : ""}`);
      record(page.body.items);
      return page.body.next_cursor as string | null;
    };
    let cursor = await poll(null);
    assert.deepEqual(seen, [], "rows after a running transaction wait for it");
    release();
    await early;
    const rest = await pollFeed(machine, feed, cursor, 4);
    record(rest.items);
    cursor = rest.cursor;
    assert.deepEqual(seen, ["cat", "dog", "dog", "dog"], "none skipped, commit-safe order");
    await poll(cursor);
    assert.equal(seen.length, 4, "none delivered twice");
  },
);

withAnnotations(
  "annotations: a transaction running in another database does not hold the feed back",
  async ({ machine, dataset }) => {
    const ds = await dataset([{}]);
    const feed = `/api/v1/datasets/${ds.id}/annotations`;
    const other = await createTestDb(1);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const startedP = new Promise<void>((r) => (started = r));
    // Another application's long transaction on the same server, with an xid of its own.
    const long = transaction(other.db, async (tx) => {
      await tx.unsafe("SELECT pg_current_xact_id()");
      started();
      await held;
    });
    try {
      await startedP;
      const res = await machine.req("POST", `/api/v1/images/${ds.images[0]}/annotations`, {
        model,
        labels: ["dog"],
      });
      assert.equal(res.status, 201);
      // Held back by the long transaction, it would never come.
      const page = await pollFeed(machine, feed, null, 1);
      assert.deepEqual(page.items.map((a: { id: string }) => a.id), [res.body.id]);
    } finally {
      release();
      await long;
      await other.close();
    }
  },
);

withAnnotations(
  "annotations: stats count images, annotations and claims",
  async ({ h, ann, machine, dataset, humanSubmit }) => {
    const ds = await dataset([{}, {}, {}]);
    await machine.req("POST", `/api/v1/images/${ds.images[2]}/annotations`, {
      model,
      empty: true,
    });
    assert.equal((await humanSubmit(ann, ds.id, { empty: true })).status, 201);
    const other = await h.user("annotator");
    await other.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    const stats = await ann.req("GET", `/api/v1/datasets/${ds.id}/stats`);
    assert.deepEqual(stats.body, {
      images: 3,
      pending: 1,
      in_progress: 1,
      done: 1,
      in_review: 0,
      accepted: 0,
      rejected: 0,
      human_annotations: 1,
      machine_annotations: 1,
      active_claims: 1,
      annotators: [
        { user_id: ann.id, annotations: 1, accepted: 0, rejected: 0, acceptance_rate: null },
      ],
      reviewers: [],
    });
    assertError(await ann.req("GET", "/api/v1/datasets/999999999/stats"), 404);
  },
);

withAnnotations(
  "annotations: export as JSON lines, every image once, filtered by source",
  async ({ h, ann, machine, dataset, humanSubmit }) => {
    const n = 1203; // more than two cursor batches
    const ds = await dataset(Array.from({ length: n }, () => ({ width: 64, height: 64 })));
    await machine.req("POST", `/api/v1/datasets/${ds.id}/predictions`, {
      predictions: ds.images.map((id) => ({ image_id: id, model, labels: ["cat"] })),
    });
    assert.equal((await humanSubmit(ann, ds.id, { labels: ["dog"] })).status, 201);
    // By default only the labelled image (tests/reviews_test.ts); every image with status=all.
    const labeled = await h.app.request(`/api/v1/datasets/${ds.id}/export`, {
      headers: { authorization: `Bearer ${machine.token}` },
    });
    assert.equal((await labeled.text()).trimEnd().split("\n").length, 1);
    const res = await h.app.request(`/api/v1/datasets/${ds.id}/export?status=all`, {
      headers: { authorization: `Bearer ${machine.token}` },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/x-ndjson");
    const lines = (await res.text()).trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.equal(lines.length, n);
    assert.deepEqual(lines.map((l) => l.id), ds.images);
    assert.equal(lines.reduce((s, l) => s + l.annotations.length, 0), n + 1);
    assert.equal(lines[0].annotations.at(-1).source, "human");
    assert.equal(lines[0].status, "done");
    const human = await h.app.request(
      `/api/v1/datasets/${ds.id}/export?source=human&status=all`,
      {
        headers: { authorization: `Bearer ${machine.token}` },
      },
    );
    const humanLines = (await human.text()).trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.equal(humanLines.length, n, "images without matching annotations stay listed");
    assert.equal(humanLines.reduce((s, l) => s + l.annotations.length, 0), 1);
    // A client that hangs up mid-export ends the snapshot transaction and frees the connection.
    const cut = await h.app.request(`/api/v1/datasets/${ds.id}/export?status=all`, {
      headers: { authorization: `Bearer ${machine.token}` },
    });
    const reader = cut.body!.getReader();
    assert.ok((await reader.read()).value!.length > 0);
    const open = async () =>
      (await h.db.unsafe(
        `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()
             AND xact_start IS NOT NULL`,
      ))[0].n;
    assert.equal(await open(), 1, "the export's snapshot is open while the client reads");
    await reader.cancel();
    for (let i = 0; i < 50 && await open() > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await open(), 0, "no transaction left open");
    assertError(
      await machine.req("GET", `/api/v1/datasets/${ds.id}/export?format=xml`),
      400,
      "validation_failed",
    );
    assertError(await machine.req("GET", "/api/v1/datasets/999999999/export"), 404);
  },
);

withAnnotations(
  "annotations: export as COCO",
  async ({ h, ann, machine, dataset, humanSubmit }) => {
    const ds = await dataset([{ width: 100, height: 80 }, {}]);
    const shapes = [
      { type: "bbox", label: "dog", x: 1, y: 2, width: 10, height: 20 },
      { type: "polygon", label: "bird", points: [[0, 0], [4, 0], [4, 3]] },
      { type: "point", label: "cat", x: 5, y: 6, confidence: 0.25 },
    ];
    assert.equal((await humanSubmit(ann, ds.id, { shapes })).status, 201);
    await machine.req("POST", `/api/v1/images/${ds.images[1]}/annotations`, {
      model,
      confidence: 0.75,
      shapes: [shapes[0]],
    });
    const res = await h.app.request(`/api/v1/datasets/${ds.id}/export?format=coco&status=all`, {
      headers: { authorization: `Bearer ${h.admin.token}` },
    });
    assert.equal(res.headers.get("content-type"), "application/json");
    const coco = await res.json();
    assert.deepEqual(coco.categories.map((c: { id: number; name: string }) => [c.id, c.name]), [
      [1, "cat"],
      [2, "dog"],
      [3, "bird"],
    ]);
    assert.deepEqual(
      coco.images.map((i: Record<string, unknown>) => [i.id, i.file_name, i.width, i.height]),
      [
        [Number(ds.images[0]), `s3://b/${seq}/0.jpg`, 100, 80],
        [Number(ds.images[1]), `s3://b/${seq}/1.jpg`, null, null],
      ],
    );
    assert.equal(coco.annotations.length, 3, "the point is left out");
    const [bbox, polygon, predicted] = coco.annotations;
    assert.deepEqual(coco.annotations.map((a: { id: number }) => a.id), [1, 2, 3]);
    assert.equal(bbox.image_id, Number(ds.images[0]));
    assert.equal(bbox.category_id, 2);
    assert.deepEqual(bbox.bbox, [1, 2, 10, 20]);
    assert.equal(bbox.area, 200);
    assert.equal(bbox.attributes.source, "human");
    assert.equal(bbox.score, undefined);
    assert.deepEqual(bbox.segmentation, [[1, 2, 11, 2, 11, 22, 1, 22]], "the box's corners");
    assert.deepEqual(polygon.segmentation, [[0, 0, 4, 0, 4, 3]]);
    assert.deepEqual(polygon.bbox, [0, 0, 4, 3]);
    assert.equal(polygon.area, 6);
    assert.ok(coco.annotations.every((a: object) => !("keypoints" in a)));
    assert.equal(predicted.image_id, Number(ds.images[1]));
    assert.equal(predicted.score, 0.75);
    assert.deepEqual(predicted.attributes.model, model);
    const humanOnly = await (await h.app.request(
      `/api/v1/datasets/${ds.id}/export?format=coco&source=human&status=all`,
      { headers: { authorization: `Bearer ${h.admin.token}` } },
    )).json();
    assert.equal(humanOnly.annotations.length, 2);
    const bare = await h.req("POST", "/api/v1/datasets", {
      name: `bare-${++seq}`,
      access: "open",
      labels: ["a"],
    });
    for (const format of ["coco", "jsonl"]) {
      const res = await h.app.request(
        `/api/v1/datasets/${bare.body.id}/export?format=${format}`,
        { headers: { authorization: `Bearer ${h.admin.token}` } },
      );
      const text = await res.text();
      if (format === "jsonl") assert.equal(text, "");
      else assert.deepEqual([JSON.parse(text).images, JSON.parse(text).annotations], [[], []]);
    }
  },
);

withApp(
  "createPredictions: an image deleted while the batch is written is 409, nothing written",
  async (h) => {
    // Another session deletes the image and holds its transaction open, so the batch (which read
    // the image before the delete commits) waits on the row, then finds it gone.
    const other = connect(h.url, { max: 1, connectTimeoutSeconds: 10, statementTimeoutMs: 10_000 });
    try {
      const machine = await h.user("machine");
      const ds = await h.req("POST", "/api/v1/datasets", {
        name: "race-409",
        labels: ["cat"],
        access: "open",
      });
      const reg = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
        images: [{ uri: "s3://b/1.jpg" }, { uri: "s3://b/2.jpg" }],
      });
      const [gone, kept] = reg.body.images.map((i: { id: string }) => i.id);
      await other.unsafe("BEGIN");
      await other.unsafe("DELETE FROM images WHERE id = $1::bigint", [gone]);
      const batch = machine.req("POST", `/api/v1/datasets/${ds.body.id}/predictions`, {
        predictions: [
          { image_id: kept, model: { name: "m", version: "1" }, labels: ["cat"] },
          { image_id: gone, model: { name: "m", version: "1" }, labels: ["cat"] },
        ],
      });
      for (let i = 0;; i++) {
        const [{ n }] = await h.db`SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock'`;
        if (n > 0) break;
        if (i > 500) throw new Error("the batch never waited on the deleted image");
        await new Promise((r) => setTimeout(r, 10));
      }
      await other.unsafe("COMMIT");
      const res = await batch;
      assertError(res, 409, "conflict");
      const spec = (await h.anon("GET", "/api/openapi.json")).body;
      assert.ok(
        spec.paths["/api/v1/datasets/{datasetId}/predictions"].post.responses["409"],
        "the document declares it",
      );
      const [{ n }] = await h.db`SELECT count(*)::int AS n FROM annotations
      WHERE dataset_id = ${ds.body.id}`;
      assert.equal(n, 0, "the batch wrote nothing");
    } finally {
      await other.end();
    }
  },
);
