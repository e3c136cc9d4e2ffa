/**
 * createAnnotation with `"next": true`: the submit and the next claim in one request, the claim
 * made only after the submit committed, and the spec stating both answers.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { createApp } from "../lib/http/app.ts";
import { silentLogger } from "../lib/runtime/log.ts";
import {
  assertError,
  createTestApp,
  rawOne,
  type TestApp,
  testConfig,
  type TestUser,
} from "./harness.ts";

let seq = 0;

async function dataset(h: TestApp, priorities: number[]) {
  const ds = await h.req("POST", "/api/v1/datasets", {
    name: `next-${++seq}`,
    labels: ["cat", "dog"],
    access: "open",
  });
  assert.equal(ds.status, 201);
  const reg = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
    images: priorities.map((priority, i) => ({
      uri: `s3://b/next/${seq}/${i}.jpg`,
      external_id: `n-${i}`,
      priority,
      width: 640,
      height: 480,
    })),
  });
  assert.equal(reg.status, 200);
  return { id: ds.body.id as string, images: reg.body.images.map((i: { id: string }) => i.id) };
}

const claim = (u: TestUser, datasetId: string) =>
  u.req("POST", `/api/v1/datasets/${datasetId}/claims`);

async function withApp(fn: (h: TestApp) => Promise<void>) {
  const h = await createTestApp();
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

Deno.test("next: true answers the annotation and the next claim, which claimNextImage holds", () =>
  withApp(async (h) => {
    const a = await h.user("annotator");
    const ds = await dataset(h, [2, 1, 0]);
    const c = await claim(a, ds.id);
    const res = await a.req("POST", `/api/v1/images/${ds.images[0]}/annotations`, {
      claim_id: c.body.claim.id,
      labels: ["cat"],
      shapes: [{ type: "bbox", label: "dog", x: 1, y: 2, width: 30, height: 40 }],
      next: true,
    });
    assert.equal(res.status, 201);
    assert.deepEqual(Object.keys(res.body).sort(), ["annotation", "next"]);
    const { annotation, next } = res.body;
    assert.equal(annotation.image_id, ds.images[0]);
    assert.equal(annotation.source, "human");
    assert.deepEqual(annotation.labels, ["cat"]);
    assert.equal(next.image.id, ds.images[1]);
    assert.deepEqual(Object.keys(next).sort(), [
      "claim",
      "image",
      "media",
      "media_unavailable",
      "predictions",
      "rework",
    ]);
    // The first claim was completed before the next was made: one live claim, the new one.
    const first = await a.req("POST", `/api/v1/claims/${c.body.claim.id}/renew`);
    assertError(first, 409, "claim_completed");
    const again = await claim(a, ds.id);
    assert.equal(again.status, 200);
    assert.equal(again.body.claim.id, next.claim.id);
    const live = await rawOne<{ n: number }>(
      h.db,
      "SELECT count(*)::int AS n FROM current_claims WHERE user_id = $1 AND active",
      [a.id],
    );
    assert.equal(live?.n, 1);
  }));

Deno.test("next: true on the last image answers next: null", () =>
  withApp(async (h) => {
    const a = await h.user("annotator");
    const ds = await dataset(h, [0]);
    const c = await claim(a, ds.id);
    const res = await a.req("POST", `/api/v1/images/${ds.images[0]}/annotations`, {
      claim_id: c.body.claim.id,
      labels: ["dog"],
      next: true,
    });
    assert.equal(res.status, 201);
    assert.deepEqual(res.body.next, null);
    assert.equal(res.body.next_error, undefined);
    assert.equal((await claim(a, ds.id)).status, 204);
  }));

Deno.test("without next the answer is the annotation, as before", () =>
  withApp(async (h) => {
    const a = await h.user("annotator");
    const ds = await dataset(h, [1, 0]);
    const c = await claim(a, ds.id);
    for (const next of [undefined, false]) {
      const claimed = next === undefined ? c : await claim(a, ds.id);
      const res = await a.req("POST", `/api/v1/images/${claimed.body.image.id}/annotations`, {
        claim_id: claimed.body.claim.id,
        labels: ["cat"],
        ...(next === undefined ? {} : { next }),
      });
      assert.equal(res.status, 201);
      assert.equal(res.body.image_id, claimed.body.image.id);
      assert.equal(res.body.next, undefined);
    }
    assert.equal((await claim(a, ds.id)).status, 204, "no claim was made");
  }));

Deno.test("machines cannot ask for next; a refused submit claims nothing", () =>
  withApp(async (h) => {
    const m = await h.user("machine");
    const a = await h.user("annotator");
    const ds = await dataset(h, [1, 0]);
    const res = await m.req("POST", `/api/v1/images/${ds.images[0]}/annotations`, {
      model: { name: "det", version: "1" },
      labels: ["cat"],
      next: true,
    });
    assertError(res, 400, "validation_failed");
    assert.match(res.body.error.message, /^body\.next: machines do not claim images/);

    const c = await claim(a, ds.id);
    const bad = await a.req("POST", `/api/v1/images/${ds.images[0]}/annotations`, {
      claim_id: c.body.claim.id,
      labels: ["horse"],
      next: true,
    });
    assertError(bad, 422, "unknown_label");
    // Still the first claim, live: nothing was claimed after the refusal.
    const held = await claim(a, ds.id);
    assert.equal(held.status, 200);
    assert.equal(held.body.claim.id, c.body.claim.id);
  }));

Deno.test("a submit with next on a released claim is refused and claims nothing behind it", () =>
  withApp(async (h) => {
    const a = await h.user("annotator");
    const ds = await dataset(h, [2, 1]);
    const c = await claim(a, ds.id);
    assert.equal((await a.req("DELETE", `/api/v1/claims/${c.body.claim.id}`)).status, 204);
    const res = await a.req("POST", `/api/v1/images/${c.body.image.id}/annotations`, {
      claim_id: c.body.claim.id,
      labels: ["cat"],
      next: true,
    });
    assertError(res, 409, "claim_released");
    // No claim was made for the refused submit: the next claim is a new one, not one held.
    const after = await claim(a, ds.id);
    assert.equal(after.status, 201);
  }));

Deno.test("next works for a claim this server did not hand out (another replica's)", () =>
  withApp(async (h) => {
    const a = await h.user("annotator");
    const ds = await dataset(h, [2, 1]);
    // A second app over the same database stands for a second server process.
    const other = createApp({
      db: h.db,
      config: testConfig(),
      log: silentLogger,
      now: h.clock.now,
    });
    const c = await other.request(`/api/v1/datasets/${ds.id}/claims`, {
      method: "POST",
      headers: { authorization: `Bearer ${a.token}` },
    });
    assert.equal(c.status, 201);
    const { claim: theirs, image } = await c.json();
    const res = await a.req("POST", `/api/v1/images/${image.id}/annotations`, {
      claim_id: theirs.id,
      labels: ["cat"],
      next: true,
    });
    assert.equal(res.status, 201);
    assert.equal(res.body.annotation.image_id, ds.images[0]);
    assert.equal(res.body.next.image.id, ds.images[1]);
  }));

Deno.test("an admin's correction with next claims the admin's next image", () =>
  withApp(async (h) => {
    const ds = await dataset(h, [1, 0]);
    const res = await h.req("POST", `/api/v1/images/${ds.images[1]}/annotations`, {
      labels: ["dog"],
      next: true,
    });
    assert.equal(res.status, 201);
    assert.equal(res.body.annotation.author_id, h.admin.id);
    assert.equal(res.body.next.image.id, ds.images[0]);
  }));

Deno.test("a claim that fails after the submit is saved is reported beside the annotation", () =>
  withApp(async (h) => {
    const a = await h.user("annotator");
    const ds = await dataset(h, [2, 1]);
    const c = await claim(a, ds.id);
    // Another session holds the only other image locked past every retry of the claim.
    const other = postgres(h.url, { max: 1, onnotice: () => {} });
    try {
      const locked = Promise.withResolvers<void>();
      const release = Promise.withResolvers<void>();
      const holder = other.begin(async (tx) => {
        await tx.unsafe("SELECT 1 FROM images WHERE id = $1 FOR UPDATE", [ds.images[1]]);
        locked.resolve();
        await release.promise;
      });
      await locked.promise;
      const res = await a.req("POST", `/api/v1/images/${ds.images[0]}/annotations`, {
        claim_id: c.body.claim.id,
        labels: ["cat"],
        next: true,
      });
      release.resolve();
      await holder;
      assert.equal(res.status, 201);
      assert.equal(res.body.annotation.image_id, ds.images[0]);
      assert.equal(res.body.next, null);
      assert.equal(res.body.next_error.code, "busy");
      // The annotation stands; claiming again now works.
      const list = await h.req("GET", `/api/v1/images/${ds.images[0]}/annotations`);
      assert.equal(list.body.items.length, 1);
      assert.equal((await claim(a, ds.id)).body.image.id, ds.images[1]);
    } finally {
      await other.end();
    }
  }));

Deno.test("the spec states next and both 201 answers", () =>
  withApp(async (h) => {
    const spec = (await h.anon("GET", "/api/openapi.json")).body;
    const schemas = spec.components.schemas;
    assert.equal(schemas.CreateAnnotation.properties.next.type, "boolean");
    const created = spec.paths["/api/v1/images/{imageId}/annotations"].post.responses["201"];
    assert.deepEqual(created.content["application/json"].schema.oneOf, [
      { $ref: "#/components/schemas/Annotation" },
      { $ref: "#/components/schemas/AnnotationWithNext" },
    ]);
    assert.deepEqual(Object.keys(schemas.AnnotationWithNext.properties), [
      "annotation",
      "next",
      "next_error",
    ]);
    assert.deepEqual(schemas.AnnotationWithNext.required, ["annotation", "next"]);
    const skip = spec.paths["/api/v1/claims/{claimId}"].delete.parameters
      .find((p: { name: string }) => p.name === "skip");
    assert.deepEqual(skip.schema.enum, ["true", "false"]);
  }));
