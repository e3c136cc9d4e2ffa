/**
 * The COCO export over HTTP: category ids that never change (labels are append-only), categories
 * read in the export's own snapshot, and output that is well-formed COCO.
 */
import assert from "node:assert/strict";
import { assertError, type TestApp, type TestUser, withApp } from "./harness.ts";

let seq = 0;
const model = { name: "detector", version: "1" };

interface Export {
  h: TestApp;
  machine: TestUser;
  /** A dataset with these labels and images; returns its id and the images' ids. */
  dataset(
    labels: string[],
    images: { width?: number; height?: number }[],
  ): Promise<{ id: string; images: string[] }>;
  /** The machine's annotation of the image with these shapes. */
  predict(imageId: string, shapes: object[]): ReturnType<TestUser["req"]>;
  // deno-lint-ignore no-explicit-any
  exportCoco(datasetId: string, query?: string): Promise<any>;
}

/** A test on a fresh app with a machine user. */
function withExport(name: string, fn: (e: Export) => Promise<void>): void {
  withApp(name, async (h) => {
    const machine = await h.user("machine");

    async function dataset(labels: string[], images: { width?: number; height?: number }[]) {
      const ds = await h.req("POST", "/api/v1/datasets", {
        name: `export-${++seq}`,
        labels,
        access: "open",
      });
      assert.equal(ds.status, 201);
      const reg = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
        images: images.map((i, n) => ({ uri: `s3://b/export/${seq}/${n}.jpg`, ...i })),
      });
      assert.equal(reg.status, 200);
      return { id: ds.body.id as string, images: reg.body.images.map((i: { id: string }) => i.id) };
    }

    // A model per call: a model's second prediction on an image would supersede its first.
    let models = 0;
    const predict = (imageId: string, shapes: object[]) =>
      machine.req("POST", `/api/v1/images/${imageId}/annotations`, {
        model: { ...model, name: `${model.name}-${++models}` },
        shapes,
      });

    const exportCoco = async (datasetId: string, query = "") => {
      const res = await h.app.request(
        `/api/v1/datasets/${datasetId}/export?format=coco&status=all${query}`,
        {
          headers: { authorization: `Bearer ${machine.token}` },
        },
      );
      assert.equal(res.status, 200);
      return await res.json();
    };

    await fn({ h, machine, dataset, predict, exportCoco });
  });
}

/** label name → category id */
const categoryIds = (coco: { categories: { id: number; name: string }[] }) =>
  Object.fromEntries(coco.categories.map((c) => [c.name, c.id]));

withExport(
  "COCO export: labels are append-only: drops, renames and reorders are 409",
  async ({ h, dataset }) => {
    const ds = await dataset(["cat", "dog"], [{}]);
    const patch = (labels: string[]) => h.req("PATCH", `/api/v1/datasets/${ds.id}`, { labels });
    for (
      const [labels, pattern] of [
        [["dog", "cat"], /body\.labels\.0 is "dog" but must be "cat"/],
        [["dog", "cat", "bird"], /body\.labels\.0 is "dog" but must be "cat"/],
        [["cat", "bird", "dog"], /body\.labels\.1 is "bird" but must be "dog"/],
        [["cat", "hound"], /drops "dog"/],
        [["cat"], /drops "dog"/],
      ] as const
    ) {
      const res = await patch([...labels]);
      assertError(res, 409, "labels_append_only");
      assert.match(res.body.error.message, pattern);
      assert.ok(res.body.error.details.length > 0);
    }
    assert.deepEqual((await h.req("GET", `/api/v1/datasets/${ds.id}`)).body.labels, [
      "cat",
      "dog",
    ], "nothing changed");
    const same = await patch(["cat", "dog"]);
    assert.equal(same.status, 200, "the same list is fine");
    const grown = await patch(["cat", "dog", "bird"]);
    assert.equal(grown.status, 200);
    assert.deepEqual(grown.body.labels, ["cat", "dog", "bird"]);
  },
);

withExport(
  "COCO export: a label keeps its category id across exports",
  async ({ h, dataset, predict, exportCoco }) => {
    const ds = await dataset(["cat", "dog"], [{}]);
    assert.equal((await predict(ds.images[0], [box("dog")])).status, 201);
    const before = await exportCoco(ds.id);
    assert.deepEqual(categoryIds(before), { cat: 1, dog: 2 });
    assert.equal(before.annotations[0].category_id, 2);
    await h.req("PATCH", `/api/v1/datasets/${ds.id}`, { labels: ["dog", "cat"] });
    assert.deepEqual(categoryIds(await exportCoco(ds.id)), { cat: 1, dog: 2 }, "not reordered");
    await h.req("PATCH", `/api/v1/datasets/${ds.id}`, { labels: ["cat", "dog", "bird"] });
    assert.equal((await predict(ds.images[0], [box("bird")])).status, 201);
    const after = await exportCoco(ds.id);
    assert.deepEqual(categoryIds(after), { cat: 1, dog: 2, bird: 3 });
    assert.deepEqual(after.annotations.map((a: { category_id: number }) => a.category_id), [
      2,
      3,
    ]);
  },
);

withExport(
  "COCO export: categories come from the export's own snapshot",
  async ({ h, machine, dataset, predict, exportCoco }) => {
    const ds = await dataset(["cat"], [{}]);
    assert.equal((await predict(ds.images[0], [box("cat")])).status, 201);
    const res = await h.app.request(`/api/v1/datasets/${ds.id}/export?format=coco&status=all`, {
      headers: { authorization: `Bearer ${machine.token}` },
    });
    const reader = res.body!.getReader();
    const chunks: Uint8Array[] = [(await reader.read()).value!];
    // While the export streams, a label is appended and used.
    const grown = await h.req("PATCH", `/api/v1/datasets/${ds.id}`, { labels: ["cat", "zebra"] });
    assert.equal(grown.status, 200);
    assert.equal((await predict(ds.images[0], [box("zebra")])).status, 201);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
    const coco = JSON.parse(new TextDecoder().decode(concat(chunks)));
    const ids = new Set(coco.categories.map((c: { id: number }) => c.id));
    for (const a of coco.annotations) {
      assert.ok(ids.has(a.category_id), `category ${a.category_id} of ${JSON.stringify(a)}`);
    }
    assert.deepEqual(categoryIds(coco), { cat: 1 }, "the labels as the snapshot saw them");
    assert.equal(coco.annotations.length, 1, "and the annotations as it saw them");
    // A new export sees both.
    const now = await exportCoco(ds.id);
    assert.deepEqual(categoryIds(now), { cat: 1, zebra: 2 });
    assert.equal(now.annotations.length, 2);
  },
);

withExport(
  "COCO export: the output is well-formed COCO, across cursor batches",
  async ({ h, machine, dataset, exportCoco }) => {
    const n = 1100; // more than two of the export's cursor batches (500)
    const ds = await dataset(
      ["cat", "dog"],
      Array.from({ length: n }, (_, i) => (i % 3 ? { width: 200, height: 100 } : {})),
    );
    const shapes = [
      box("cat"),
      { type: "polygon", label: "dog", points: [[10, 10], [50, 10], [50, 40], [10, 40]] },
      { type: "point", label: "cat", x: 5, y: 5 },
      { type: "polygon", label: "cat", points: [[0, 0], [6, 0], [3, 5]], confidence: 0.5 },
    ];
    const res = await machine.req("POST", `/api/v1/datasets/${ds.id}/predictions`, {
      predictions: ds.images.map((image_id: string, i: number) => ({
        image_id,
        model,
        confidence: 0.9,
        shapes: shapes.slice(0, i % 5),
        ...(i % 5 ? {} : { empty: true }),
      })),
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const coco = await exportCoco(ds.id);
    const expected = ds.images.reduce(
      (sum: number, _: string, i: number) =>
        sum + shapes.slice(0, i % 5).filter((s) => s.type !== "point").length,
      0,
    );
    assertCoco(coco);
    assert.equal(coco.images.length, n);
    assert.equal(coco.annotations.length, expected, "one per bbox or polygon; no points");
    const unsized = coco.images.filter((i: { width: unknown }) => i.width === null);
    assert.equal(unsized.length, Math.ceil(n / 3), "unsized images: width and height null");
    const byImage = new Map(coco.images.map((i: { id: number }) => [i.id, i]));
    for (const a of coco.annotations) {
      assert.ok(byImage.has(a.image_id));
      assert.ok(a.score === 0.9 || a.score === 0.5, "the prediction's confidence as score");
    }
    const square = coco.annotations.find((a: { area: number }) => a.area === 1200);
    assert.deepEqual(square.bbox, [10, 10, 40, 30]);
    assert.deepEqual(square.segmentation, [[10, 10, 50, 10, 50, 40, 10, 40]]);
    const triangle = coco.annotations.find((a: { area: number }) => a.area === 15);
    assert.equal(triangle.score, 0.5, "a shape's own confidence wins");
    assert.deepEqual(triangle.bbox, [0, 0, 6, 5]);
    // The annotation ids are this export's own counter; the server's id is in attributes.
    const serverIds = new Set(coco.annotations.map((a: AnyObj) => a.attributes.annotation_id));
    const listed = await machine.req("GET", `/api/v1/images/${ds.images[1]}/annotations`);
    assert.ok(serverIds.has(listed.body.items[0].id));
    // ...and the spec says so, instead of calling them the server's ids.
    const spec = await (await h.app.request("/api/openapi.json")).json();
    const text = spec.paths["/api/v1/datasets/{datasetId}/export"].get.description as string;
    assert.match(text, /numbered 1, 2, \.\.\. within each export/);
    assert.match(text, /attributes\.annotation_id/);
    assert.doesNotMatch(text, /annotation ids are the server's/);
    assert.match(text, /Point shapes .* left out/);
  },
);

withExport(
  "COCO export: invalid export parameters are 400 with the error shape",
  async ({ machine, dataset }) => {
    const ds = await dataset(["cat"], [{}]);
    for (const query of ["source=robot", "source=", "source=HUMAN", "format=coco&source=x"]) {
      const res = await machine.req("GET", `/api/v1/datasets/${ds.id}/export?${query}`);
      assertError(res, 400, "validation_failed");
      assert.ok(
        res.body.error.details.some((d: { path: string }) => d.path.includes("source")),
        JSON.stringify(res.body),
      );
    }
  },
);

// deno-lint-ignore no-explicit-any
type AnyObj = Record<string, any>;

const isNum = (v: unknown) => typeof v === "number" && Number.isFinite(v);

/** Asserts the COCO detection format: the parts, ids, references, and each annotation's shape. */
function assertCoco(coco: AnyObj): void {
  for (const key of ["info", "licenses", "categories", "images", "annotations"]) {
    assert.ok(key in coco, `${key} missing`);
  }
  const categories = new Set<number>();
  for (const c of coco.categories) {
    assert.ok(Number.isInteger(c.id) && c.id > 0 && !categories.has(c.id), `category ${c.id}`);
    assert.equal(typeof c.name, "string");
    categories.add(c.id);
  }
  const images = new Set<number>();
  for (const i of coco.images) {
    assert.ok(Number.isInteger(i.id) && !images.has(i.id), `image ${i.id}`);
    assert.equal(typeof i.file_name, "string");
    for (const side of [i.width, i.height]) {
      assert.ok(side === null || (Number.isInteger(side) && side > 0), `image size ${side}`);
    }
    images.add(i.id);
  }
  const ids = new Set<number>();
  for (const a of coco.annotations) {
    const what = JSON.stringify(a);
    assert.ok(Number.isInteger(a.id) && a.id > 0 && !ids.has(a.id), `id: ${what}`);
    ids.add(a.id);
    assert.ok(images.has(a.image_id), `image_id: ${what}`);
    assert.ok(categories.has(a.category_id), `category_id: ${what}`);
    assert.ok(isNum(a.area) && a.area > 0, `area: ${what}`);
    assert.ok(Array.isArray(a.bbox) && a.bbox.length === 4 && a.bbox.every(isNum), `bbox: ${what}`);
    assert.ok(a.bbox[2] > 0 && a.bbox[3] > 0, `bbox size: ${what}`);
    assert.equal(a.iscrowd, 0);
    assert.ok(Array.isArray(a.segmentation) && a.segmentation.length > 0, `segmentation: ${what}`);
    for (const polygon of a.segmentation) {
      assert.ok(
        polygon.length >= 6 && polygon.length % 2 === 0 && polygon.every(isNum),
        `polygon: ${what}`,
      );
      // The polygon lies in its bbox.
      const [x, y, w, h] = a.bbox;
      for (let k = 0; k < polygon.length; k += 2) {
        assert.ok(polygon[k] >= x && polygon[k] <= x + w, `x in bbox: ${what}`);
        assert.ok(polygon[k + 1] >= y && polygon[k + 1] <= y + h, `y in bbox: ${what}`);
      }
    }
    assert.ok(!("keypoints" in a), `no keypoints: ${what}`);
    if ("score" in a) assert.ok(isNum(a.score), `score: ${what}`);
  }
  assert.deepEqual([...ids].sort((p, q) => p - q), [...ids].map((_, i) => i + 1), "ids 1..n");
}

function box(label: string) {
  return { type: "bbox", label, x: 1, y: 2, width: 3, height: 4 };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
