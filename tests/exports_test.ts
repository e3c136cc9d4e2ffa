/**
 * The COCO export over HTTP: category ids that never change (labels are append-only), categories
 * read in the export's own snapshot, and output that is well-formed COCO.
 */
import assert from "node:assert/strict";
import { assertError, createTestApp } from "./harness.ts";

let seq = 0;

Deno.test("COCO export", async (t) => {
  const h = await createTestApp();
  const machine = await h.user("machine");
  const model = { name: "detector", version: "1" };

  async function dataset(labels: string[], images: { width?: number; height?: number }[]) {
    const ds = await h.req("POST", "/api/v1/datasets", { name: `export-${++seq}`, labels });
    assert.equal(ds.status, 201);
    const reg = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
      images: images.map((i, n) => ({ uri: `s3://b/export/${seq}/${n}.jpg`, ...i })),
    });
    assert.equal(reg.status, 200);
    return { id: ds.body.id as string, images: reg.body.images.map((i: { id: string }) => i.id) };
  }

  const predict = (imageId: string, shapes: object[]) =>
    machine.req("POST", `/api/v1/images/${imageId}/annotations`, { model, shapes });

  const exportCoco = async (datasetId: string, query = "") => {
    const res = await h.app.request(`/api/v1/datasets/${datasetId}/export?format=coco${query}`, {
      headers: { authorization: `Bearer ${machine.token}` },
    });
    assert.equal(res.status, 200);
    return await res.json();
  };

  /** label name → category id */
  const categoryIds = (coco: { categories: { id: number; name: string }[] }) =>
    Object.fromEntries(coco.categories.map((c) => [c.name, c.id]));

  try {
    await t.step("labels are append-only: drops, renames and reorders are 409", async () => {
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
    });

    await t.step("a label keeps its category id across exports", async () => {
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
    });

    await t.step("categories come from the export's own snapshot", async () => {
      const ds = await dataset(["cat"], [{}]);
      assert.equal((await predict(ds.images[0], [box("cat")])).status, 201);
      const res = await h.app.request(`/api/v1/datasets/${ds.id}/export?format=coco`, {
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
    });
  } finally {
    await h.close();
  }
});

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
