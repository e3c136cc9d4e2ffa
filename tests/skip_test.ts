/**
 * Skipping: releaseClaim with `?skip=true` gives the image back for everyone but the skipper, on
 * every claim path (the single statement, the batch, the empty-queue diagnosis).
 */
import assert from "node:assert/strict";
import { claimNextImages } from "../sql/claims/queries.ts";
import { releaseLease } from "../sql/leases/queries.ts";
import {
  annotators,
  assertError,
  createTestApp,
  rawOne,
  type TestApp,
  type TestUser,
} from "./harness.ts";

let seq = 0;

/** A dataset with one image per priority (registered in that order). */
async function dataset(h: TestApp, priorities: number[]) {
  const ds = await h.req("POST", "/api/v1/datasets", {
    name: `skip-${++seq}`,
    labels: ["cat", "dog"],
    access: "open",
  });
  assert.equal(ds.status, 201);
  const reg = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
    images: priorities.map((priority, i) => ({ uri: `s3://b/skip/${seq}/${i}.jpg`, priority })),
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

Deno.test("a skipped image is never offered to the skipper again, and is to everyone else", () =>
  withApp(async (h) => {
    const [a, b] = [await h.user("annotator"), await h.user("annotator")];
    const ds = await dataset(h, [1, 0]);
    const first = await claim(a, ds.id);
    assert.equal(first.body.image.id, ds.images[0]);
    const skipped = await a.req("DELETE", `/api/v1/claims/${first.body.claim.id}?skip=true`);
    assert.equal(skipped.status, 204);

    // The skipper gets the other image; another annotator gets the skipped one.
    const next = await claim(a, ds.id);
    assert.equal(next.status, 201);
    assert.equal(next.body.image.id, ds.images[1]);
    const theirs = await claim(b, ds.id);
    assert.equal(theirs.body.image.id, ds.images[0]);
    assert.equal((await b.req("DELETE", `/api/v1/claims/${theirs.body.claim.id}`)).status, 204);

    // Once the skipper is done with the rest, nothing is left for them: 204, not 503 busy,
    // though the skipped image is still pending and free.
    const done = await a.req("POST", `/api/v1/images/${ds.images[1]}/annotations`, {
      claim_id: next.body.claim.id,
      labels: ["cat"],
    });
    assert.equal(done.status, 201);
    assert.equal((await claim(a, ds.id)).status, 204);
    const stats = await h.req("GET", `/api/v1/datasets/${ds.id}/stats`);
    assert.equal(stats.body.pending, 1);
    assert.equal((await claim(b, ds.id)).body.image.id, ds.images[0]);
  }));

Deno.test("a release without skip offers the image to the same annotator again", () =>
  withApp(async (h) => {
    const a = await h.user("annotator");
    const ds = await dataset(h, [1, 0]);
    for (const query of ["", "?skip=false"]) {
      const c = await claim(a, ds.id);
      assert.equal(c.body.image.id, ds.images[0]);
      assert.equal(
        (await a.req("DELETE", `/api/v1/claims/${c.body.claim.id}${query}`)).status,
        204,
      );
    }
    assert.equal((await claim(a, ds.id)).body.image.id, ds.images[0]);
  }));

Deno.test("an admin releasing someone's claim with skip records the holder's skip", () =>
  withApp(async (h) => {
    const [a, b] = [await h.user("annotator"), await h.user("annotator")];
    const ds = await dataset(h, [1, 0]);
    const c = await claim(a, ds.id);
    assert.equal(
      (await h.req("DELETE", `/api/v1/claims/${c.body.claim.id}?skip=true`)).status,
      204,
    );
    const row = await rawOne<{ skipped_by: string[] }>(
      h.db,
      "SELECT skipped_by::text[] FROM images WHERE id = $1",
      [ds.images[0]],
    );
    assert.deepEqual(row?.skipped_by, [a.id]);
    assert.equal((await claim(a, ds.id)).body.image.id, ds.images[1]);
    assert.equal((await claim(b, ds.id)).body.image.id, ds.images[0]);
  }));

Deno.test("skip takes true or false only", () =>
  withApp(async (h) => {
    const a = await h.user("annotator");
    const ds = await dataset(h, [0]);
    const c = await claim(a, ds.id);
    const res = await a.req("DELETE", `/api/v1/claims/${c.body.claim.id}?skip=yes`);
    assertError(res, 400, "validation_failed");
    assert.match(res.body.error.message, /^query\.skip/);
    // Refused before anything was done: the claim is still live.
    assert.equal((await claim(a, ds.id)).status, 200);
  }));

Deno.test("a skip ends a claim like a release: renew and submit are refused after it", () =>
  withApp(async (h) => {
    const a = await h.user("annotator");
    const ds = await dataset(h, [0]);
    const c = await claim(a, ds.id);
    const id = c.body.claim.id;
    assert.equal((await a.req("DELETE", `/api/v1/claims/${id}?skip=true`)).status, 204);
    assertError(await a.req("DELETE", `/api/v1/claims/${id}?skip=true`), 409, "claim_released");
    assertError(await a.req("POST", `/api/v1/claims/${id}/renew`), 409, "claim_released");
    const row = await rawOne<{ skipped_by: string[] }>(
      h.db,
      "SELECT skipped_by::text[] FROM images WHERE id = $1",
      [ds.images[0]],
    );
    assert.deepEqual(row?.skipped_by, [a.id], "recorded once");
  }));

Deno.test("a batch of claims never hands a caller an image it skipped", () =>
  withApp(async (h) => {
    const [a, b] = [await h.user("annotator"), await h.user("annotator")];
    const ds = await dataset(h, [2, 1, 0]);
    const c = await claim(a, ds.id);
    assert.equal(c.body.image.id, ds.images[0]);
    assert.ok(
      await releaseLease(h.db, {
        kind: "annotate",
        claim_id: c.body.claim.id,
        user_id: a.id,
        skip: true,
        caller_id: a.id,
        caller_role: "annotator",
      }),
    );

    // In user order, each wanting caller gets the next image none of the batch's callers
    // skipped: the skipped one is left to the single statement, for b's next claim.
    const outcomes = await claimNextImages(h.db, {
      dataset_id: ds.id,
      user_ids: [a.id, b.id],
      user_roles: annotators([a.id, b.id]),
      after_claim_ids: null,
    });
    const given = outcomes.map((o) => o?.state === "new" ? o.image.id : undefined);
    assert.deepEqual(given, [ds.images[1], ds.images[2]]);
    const theirs = outcomes[1];
    assert.ok(theirs?.state === "new");
    assert.equal((await b.req("DELETE", `/api/v1/claims/${theirs.claim.id}`)).status, 204);
    assert.equal((await claim(b, ds.id)).body.image.id, ds.images[0]);
  }));
