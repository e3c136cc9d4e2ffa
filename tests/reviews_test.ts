/**
 * The review workflow over HTTP: the review queue (claimNextReview, renewReview, releaseReview),
 * submitReview's accept, fix and reject with every refusal, rework going first to the rejected
 * annotator, amendments, corrections and re-pushed predictions superseding, and what ML clients
 * read (listImageAnnotations ?status=all, the export's status and history, the changes feed,
 * getDatasetStats). Concurrency is in tests/review_races_test.ts and review_processes_test.ts.
 */
import assert from "node:assert/strict";
import {
  assertError,
  pollFeed,
  rawExec,
  rawOne,
  type TestApp,
  type TestUser,
  withApp,
} from "./harness.ts";

let seq = 0;

interface Fixture {
  id: string;
  images: string[];
}

/** An open dataset with `n` images (priority n-1 … 0, so the first registered comes first). */
async function dataset(
  h: TestApp,
  n: number,
  opts: { rate?: number; k?: number; ttl?: number } = {},
): Promise<Fixture> {
  const ds = await h.req("POST", "/api/v1/datasets", {
    name: `reviews-${++seq}`,
    labels: ["cat", "dog"],
    annotations_per_image: opts.k ?? 1,
    review_rate: opts.rate ?? 1,
    access: "open",
    ...(opts.ttl ? { claim_ttl_seconds: opts.ttl } : {}),
  });
  assert.equal(ds.status, 201, JSON.stringify(ds.body));
  const reg = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
    images: Array.from({ length: n }, (_, i) => ({
      uri: `s3://b/reviews/${seq}/${i}.jpg`,
      priority: n - 1 - i,
      width: 640,
      height: 480,
    })),
  });
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  return { id: ds.body.id, images: reg.body.images.map((i: { id: string }) => i.id) };
}

/** Claims the next image and submits `labels` on it; returns the image and annotation ids. */
async function annotate(
  u: TestUser,
  datasetId: string,
  labels = ["cat"],
): Promise<{ image: string; annotation: string; claim: Record<string, unknown> }> {
  const c = await u.req("POST", `/api/v1/datasets/${datasetId}/claims`);
  assert.equal(c.status, 201, JSON.stringify(c.body));
  const a = await u.req("POST", `/api/v1/images/${c.body.image.id}/annotations`, {
    claim_id: c.body.claim.id,
    labels,
  });
  assert.equal(a.status, 201, JSON.stringify(a.body));
  return { image: c.body.image.id, annotation: a.body.id, claim: c.body };
}

const claimReview = (u: TestUser, datasetId: string) =>
  u.req("POST", `/api/v1/datasets/${datasetId}/reviews`);
const decide = (u: TestUser, imageId: string, body: Record<string, unknown>) =>
  u.req("POST", `/api/v1/images/${imageId}/reviews`, body);
const imageStatus = async (h: TestApp, imageId: string) =>
  (await h.req("GET", `/api/v1/images/${imageId}`)).body.status;
const annotations = async (h: TestApp, imageId: string, all = false) =>
  (await h.req("GET", `/api/v1/images/${imageId}/annotations${all ? "?status=all" : ""}`)).body
    .items as { id: string; status: string; author_id: string; reviewed_by: string | null }[];

/** Ends the review lease's time on the image and in current_reviews (instead of waiting). */
function expireReview(h: TestApp, reviewId: string): Promise<number> {
  return rawExec(
    h.db,
    `WITH r AS (
       UPDATE current_reviews SET expires_at = now() - interval '1 second'
       WHERE claim_id = $1::bigint AND active RETURNING image_id, claim_id, user_id, expires_at
     )
     UPDATE images i SET review_lease = ROW(r.claim_id, r.user_id, r.expires_at)::lease
     FROM r WHERE i.id = r.image_id`,
    [reviewId],
  );
}

withApp("review_rate 0: a completed image is done and nothing waits for review", async (h) => {
  const [ann, rev] = [await h.user("annotator"), await h.user("reviewer")];
  const ds = await dataset(h, 1, { rate: 0 });
  const { image } = await annotate(ann, ds.id);
  assert.equal(await imageStatus(h, image), "done");
  assert.equal((await claimReview(rev, ds.id)).status, 204);
});

withApp(
  "review_rate selects images by a hash of their ids: the same answer every time",
  async (h) => {
    const ds = await dataset(h, 200, { rate: 0.3 });
    const picks = await h.db.unsafe<{ id: string; picked: boolean }[]>(
      `SELECT i.id::text, review_selected(i.dataset_id, i.id, 0.3) AS picked FROM images i
       WHERE i.dataset_id = $1::bigint ORDER BY i.id`,
      [ds.id],
    );
    const again = await h.db.unsafe<{ picked: boolean }[]>(
      `SELECT review_selected(i.dataset_id, i.id, 0.3) AS picked FROM images i
       WHERE i.dataset_id = $1::bigint ORDER BY i.id`,
      [ds.id],
    );
    assert.deepEqual(again.map((r) => r.picked), picks.map((r) => r.picked));
    const share = picks.filter((p) => p.picked).length / picks.length;
    assert.ok(share > 0.18 && share < 0.42, `selected ${share} of the images at rate 0.3`);
    // Every image selected at 0.3 is selected at a higher rate; none at 0, all at 1.
    const bounds = await rawOne<{ monotone: boolean; none: boolean; all: boolean }>(
      h.db,
      `SELECT bool_and(NOT review_selected(dataset_id, id, 0.3)
           OR review_selected(dataset_id, id, 0.6)) AS monotone,
         bool_and(NOT review_selected(dataset_id, id, 0)) AS none,
         bool_and(review_selected(dataset_id, id, 1)) AS all
       FROM images WHERE dataset_id = $1::bigint`,
      [ds.id],
    );
    assert.deepEqual(bounds, { monotone: true, none: true, all: true });
    // Annotating sends exactly the selected images to review.
    const ann = await h.user("annotator");
    for (let i = 0; i < 40; i++) await annotate(ann, ds.id);
    const wrong = await rawOne<{ n: number }>(
      h.db,
      `SELECT count(*)::int AS n FROM images WHERE dataset_id = $1::bigint AND done
         AND (review = 'waiting') <> review_selected(dataset_id, id, 0.3)`,
      [ds.id],
    );
    assert.equal(wrong?.n, 0);
  },
);

withApp(
  "the review queue: a lease with the annotations and their authors, held until submitted",
  async (h) => {
    const [ann, rev, rev2] = [
      await h.user("annotator"),
      await h.user("reviewer"),
      await h.user("reviewer"),
    ];
    const machine = await h.user("machine");
    const ds = await dataset(h, 2);
    const first = await annotate(ann, ds.id, ["dog"]);
    const p = await machine.req("POST", `/api/v1/images/${first.image}/annotations`, {
      model: { name: "det", version: "1" },
      labels: ["cat"],
    });
    assert.equal(p.status, 201);
    assert.equal(await imageStatus(h, first.image), "in_review");

    const r = await claimReview(rev, ds.id);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.image.id, first.image);
    assert.equal(r.body.image.status, "in_review");
    assert.equal(r.body.review.user_id, rev.id);
    assert.deepEqual(
      r.body.annotations.map((a: Record<string, unknown>) => [a.id, a.author_id, a.author_name]),
      [[first.annotation, ann.id, ann.name]],
    );
    assert.deepEqual(r.body.predictions.map((a: { model: { name: string } }) => a.model.name), [
      "det",
    ]);
    assert.ok("media" in r.body);

    // Asking again answers the same lease; another reviewer finds nothing else waiting.
    const again = await claimReview(rev, ds.id);
    assert.equal(again.status, 200);
    assert.equal(again.body.review.id, r.body.review.id);
    assert.equal((await claimReview(rev2, ds.id)).status, 204);

    // Annotators and machines may not review.
    assertError(await claimReview(ann, ds.id), 403);
    assertError(await claimReview(machine as TestUser, ds.id), 403);

    // A second annotated image waits, oldest in review first after priority.
    await annotate(ann, ds.id);
    const r2 = await claimReview(rev2, ds.id);
    assert.equal(r2.status, 201);
    assert.notEqual(r2.body.image.id, first.image);

    // Renew moves the expiry; release gives the image back to the queue at once.
    const renewed = await rev.req("POST", `/api/v1/reviews/${r.body.review.id}/renew`);
    assert.equal(renewed.status, 200);
    assert.ok(renewed.body.expires_at >= r.body.review.expires_at);
    assertError(
      await rev2.req("POST", `/api/v1/reviews/${r.body.review.id}/renew`),
      403,
      "review_not_yours",
    );
    assert.equal((await rev.req("DELETE", `/api/v1/reviews/${r.body.review.id}`)).status, 204);
    assertError(
      await rev.req("POST", `/api/v1/reviews/${r.body.review.id}/renew`),
      409,
      "review_released",
    );
    assertError(
      await decide(rev, first.image, { claim_id: r.body.review.id, decision: "accept" }),
      409,
      "review_released",
    );
    const back = await claimReview(rev, ds.id);
    assert.equal(back.status, 201);
    assert.equal(back.body.image.id, first.image);
    assert.notEqual(back.body.review.id, r.body.review.id);
    assertError(await rev.req("POST", "/api/v1/reviews/999999/renew"), 404);
  },
);

withApp("a reviewer is never offered an image they annotated", async (h) => {
  const rev = await h.user("reviewer");
  const ds = await dataset(h, 1);
  // Reviewers may annotate too.
  const { image } = await annotate(rev, ds.id);
  assert.equal(await imageStatus(h, image), "in_review");
  assert.equal((await claimReview(rev, ds.id)).status, 204);
  const other = await h.user("reviewer");
  assert.equal((await claimReview(other, ds.id)).status, 201);
});

withApp(
  "a members dataset: only member reviewers review; removed, a reviewer's lease ends at once, as revoked",
  async (h) => {
    const ds = await h.req("POST", "/api/v1/datasets", {
      name: `reviews-${++seq}`,
      labels: ["cat"],
      review_rate: 1,
    });
    assert.equal(ds.body.access, "members");
    const id = ds.body.id;
    await h.req("POST", `/api/v1/datasets/${id}/images`, {
      images: [{ uri: "s3://b/m/0.jpg" }],
    });
    const [ann, rev, other] = [
      await h.user("annotator"),
      await h.user("reviewer"),
      await h.user("reviewer"),
    ];
    for (const u of [ann, rev, other]) {
      assert.equal((await h.req("PUT", `/api/v1/datasets/${id}/members/${u.id}`)).status, 204);
    }
    const { image } = await annotate(ann, id);
    const outsider = await h.user("reviewer");
    assertError(await claimReview(outsider, id), 404, "not_found");

    const lease = await claimReview(rev, id);
    assert.equal(lease.status, 201);
    const reviewId = lease.body.review.id;
    assert.equal((await claimReview(other, id)).status, 204, "one reviewer at a time");
    assert.equal((await h.req("DELETE", `/api/v1/datasets/${id}/members/${rev.id}`)).status, 204);
    // The image is reviewable again at once, by another member.
    const taken = await claimReview(other, id);
    assert.equal(taken.status, 201, JSON.stringify(taken.body));
    assert.equal(taken.body.image.id, image);
    const ended = await rawOne<{ end_reason: string }>(
      h.db,
      "SELECT end_reason FROM ended_reviews WHERE claim_id = $1::bigint",
      [reviewId],
    );
    assert.equal(ended?.end_reason, "revoked");
    // Its reviewer no longer sees the dataset: its review is an unknown id; added back, it is
    // told the review was revoked.
    assertError(await decide(rev, image, { claim_id: reviewId, decision: "accept" }), 404);
    assertError(await rev.req("POST", `/api/v1/reviews/${reviewId}/renew`), 404);
    await h.req("PUT", `/api/v1/datasets/${id}/members/${rev.id}`);
    assertError(await rev.req("POST", `/api/v1/reviews/${reviewId}/renew`), 409, "review_revoked");
    assertError(
      await decide(rev, image, { claim_id: reviewId, decision: "accept" }),
      409,
      "review_revoked",
    );
  },
);

withApp(
  "removed from a dataset, a reviewer loses its claim and its review there at once, both revoked",
  async (h) => {
    const ds = await dataset(h, 2);
    assert.equal(
      (await h.req("PATCH", `/api/v1/datasets/${ds.id}`, { access: "members" })).status,
      200,
    );
    const [ann, rev, other] = [
      await h.user("annotator"),
      await h.user("reviewer"),
      await h.user("reviewer"),
    ];
    for (const u of [ann, rev, other]) {
      assert.equal((await h.req("PUT", `/api/v1/datasets/${ds.id}/members/${u.id}`)).status, 204);
    }
    const { image: reviewed } = await annotate(ann, ds.id);
    // Reviewers may annotate too: rev holds the other image's claim and the first one's review.
    const claim = await rev.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    assert.equal(claim.status, 201, JSON.stringify(claim.body));
    const review = await claimReview(rev, ds.id);
    assert.equal(review.status, 201, JSON.stringify(review.body));
    assert.equal(review.body.image.id, reviewed);
    assert.equal((await other.req("POST", `/api/v1/datasets/${ds.id}/claims`)).status, 204);
    assert.equal((await claimReview(other, ds.id)).status, 204);

    assert.equal(
      (await h.req("DELETE", `/api/v1/datasets/${ds.id}/members/${rev.id}`)).status,
      204,
    );
    const ended = await rawExec(
      h.db,
      `SELECT 1 FROM ended_leases
       WHERE end_reason = 'revoked' AND user_id = $1::bigint
         AND ((kind = 'annotate' AND claim_id = $2::bigint)
           OR (kind = 'review' AND claim_id = $3::bigint))`,
      [rev.id, claim.body.claim.id, review.body.review.id],
    );
    assert.equal(ended, 2, "both leases ended as revoked");
    // Both images are free again at once, for another member.
    const reclaimed = await other.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    assert.equal(reclaimed.status, 201, JSON.stringify(reclaimed.body));
    assert.equal(reclaimed.body.image.id, claim.body.image.id);
    const rereviewed = await claimReview(other, ds.id);
    assert.equal(rereviewed.status, 201, JSON.stringify(rereviewed.body));
    assert.equal(rereviewed.body.image.id, reviewed);
  },
);

withApp("accept: the current human annotations are accepted and the image accepted", async (h) => {
  const [ann, rev] = [await h.user("annotator"), await h.user("reviewer")];
  const ds = await dataset(h, 1);
  const { image, annotation } = await annotate(ann, ds.id);
  const r = await claimReview(rev, ds.id);
  const body = { claim_id: r.body.review.id, decision: "accept", comment: "fine" };
  assertError(await decide(rev, "999999", body), 409, "review_mismatch");
  const res = await decide(rev, image, body);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.image.status, "accepted");
  assert.deepEqual(res.body.author_ids, [ann.id]);
  assert.equal(res.body.fix, null);
  const [a] = await annotations(h, image);
  assert.equal(a.id, annotation);
  assert.equal(a.status, "accepted");
  assert.equal(a.reviewed_by, rev.id);
  assert.equal(await imageStatus(h, image), "accepted");
  // Submitted once: a second submit with the same lease is refused.
  assertError(await decide(rev, image, body), 409, "review_completed");
  assert.equal((await claimReview(rev, ds.id)).status, 204);
});

withApp(
  "reject: annotations rejected, the image back in the queue, rework first for its annotator",
  async (h) => {
    const [ann, other, rev] = [
      await h.user("annotator"),
      await h.user("annotator"),
      await h.user("reviewer"),
    ];
    const ds = await dataset(h, 3);
    const first = await annotate(ann, ds.id); // the highest priority
    const r = await claimReview(rev, ds.id);
    assert.equal(r.body.image.id, first.image);
    // A reject needs its reason.
    assertError(
      await decide(rev, first.image, { claim_id: r.body.review.id, decision: "reject" }),
      400,
    );
    const res = await decide(rev, first.image, {
      claim_id: r.body.review.id,
      decision: "reject",
      comment: "the cat is a dog",
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.image.status, "pending");
    const [a] = await annotations(h, first.image, true);
    assert.equal(a.status, "rejected");
    assert.deepEqual(await annotations(h, first.image), []);

    // Another annotator does not get it while it is reserved for the rework: the next image.
    const o = await other.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    assert.equal(o.status, 201);
    assert.notEqual(o.body.image.id, first.image);
    assert.equal(o.body.rework, null);

    // The rejected annotator gets it back first (another image has the same priority as the next
    // in line, but rework comes before anything else), with the reviewer's comment.
    const back = await ann.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    assert.equal(back.status, 201);
    assert.equal(back.body.image.id, first.image);
    assert.equal(back.body.rework.comment, "the cat is a dog");
    assert.equal(back.body.rework.reviewed_by, rev.id);
    assert.equal(back.body.rework.rejected_annotation_id, first.annotation);
    const redo = await ann.req("POST", `/api/v1/images/${first.image}/annotations`, {
      claim_id: back.body.claim.id,
      labels: ["dog"],
    });
    assert.equal(redo.status, 201);
    // Completed again, it goes back to review (the same hash selects it again).
    assert.equal(await imageStatus(h, first.image), "in_review");
    const left = await rawOne<{ rework_for: string[]; rework_until: Date | null }>(
      h.db,
      "SELECT rework_for::text[], rework_until FROM images WHERE id = $1::bigint",
      [first.image],
    );
    assert.deepEqual(left, { rework_for: [], rework_until: null });
  },
);

withApp("the review queue: highest priority first, then the image waiting longest", async (h) => {
  const [ann, rev] = [await h.user("annotator"), await h.user("reviewer")];
  const ds = await dataset(h, 4);
  const [i0, i1, i2, i3] = ds.images;
  const prioritise = async (p: [string, number][]) =>
    assert.equal(
      (await h.req("PUT", `/api/v1/datasets/${ds.id}/priorities`, {
        priorities: p.map(([image_id, priority]) => ({ image_id, priority })),
      })).status,
      200,
    );
  // Annotated (so entering review) in the order i3, i0, i1, i2: the last registered first.
  await prioritise([[i3, 9]]);
  for (const expected of [i3, i0, i1, i2]) {
    assert.equal((await annotate(ann, ds.id)).image, expected);
  }
  // Then i2 and i3 share the highest priority: i3 has waited longer, though its id is higher.
  await prioritise([[i0, 0], [i1, 5], [i2, 10], [i3, 10]]);
  const order: string[] = [];
  for (let i = 0; i < 4; i++) {
    const r = await claimReview(rev, ds.id);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    order.push(r.body.image.id);
    const d = await decide(rev, r.body.image.id, {
      claim_id: r.body.review.id,
      decision: "accept",
    });
    assert.equal(d.status, 200, JSON.stringify(d.body));
  }
  assert.deepEqual(order, [i3, i2, i1, i0]);
});

withApp(
  "reject at k = 2: both annotations rejected, each annotator's rework first, k new ones to complete",
  async (h) => {
    const [a, b, c, rev] = [
      await h.user("annotator"),
      await h.user("annotator"),
      await h.user("annotator"),
      await h.user("reviewer"),
    ];
    const ds = await dataset(h, 2, { k: 2 });
    const first = await annotate(a, ds.id);
    assert.equal((await annotate(b, ds.id)).image, first.image);
    assert.equal(await imageStatus(h, first.image), "in_review");
    const r = await claimReview(rev, ds.id);
    assert.equal(r.body.image.id, first.image);
    assert.equal(r.body.annotations.length, 2);
    const res = await decide(rev, first.image, {
      claim_id: r.body.review.id,
      decision: "reject",
      comment: "boxes missing",
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual((await annotations(h, first.image, true)).map((x) => x.status), [
      "rejected",
      "rejected",
    ]);
    // Reserved for its two annotators: a third gets the other image.
    const o = await c.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    assert.notEqual(o.body.image.id, first.image);
    // One redo leaves it pending (one current annotation of the two it needs) ...
    const redoA = await annotate(a, ds.id, ["dog"]);
    assert.equal(redoA.image, first.image);
    assert.equal(
      redoA.claim.rework && (redoA.claim.rework as { comment: string }).comment,
      "boxes missing",
    );
    assert.equal(await imageStatus(h, first.image), "pending");
    // ... the second completes it, and it goes back to review.
    assert.equal((await annotate(b, ds.id, ["dog"])).image, first.image);
    assert.equal(await imageStatus(h, first.image), "in_review");
    assert.deepEqual(
      (await annotations(h, first.image)).map((x) => [x.author_id, x.status]).sort(),
      [[a.id, "submitted"], [b.id, "submitted"]].sort(),
    );
  },
);

withApp("rework: after one claim TTL anyone may take the rejected image", async (h) => {
  const [ann, other, rev] = [
    await h.user("annotator"),
    await h.user("annotator"),
    await h.user("reviewer"),
  ];
  const ds = await dataset(h, 1);
  const { image } = await annotate(ann, ds.id);
  const r = await claimReview(rev, ds.id);
  await decide(rev, image, { claim_id: r.body.review.id, decision: "reject", comment: "no" });
  assert.equal((await other.req("POST", `/api/v1/datasets/${ds.id}/claims`)).status, 204);
  await rawExec(
    h.db,
    "UPDATE images SET rework_until = now() - interval '1 second' WHERE id = $1::bigint",
    [image],
  );
  const taken = await other.req("POST", `/api/v1/datasets/${ds.id}/claims`);
  assert.equal(taken.status, 201);
  assert.equal(taken.body.image.id, image);
  assert.equal(taken.body.rework.comment, "no");
});

withApp(
  "fix: the reviewer's annotation replaces the others and the image is accepted",
  async (h) => {
    const [ann, rev] = [await h.user("annotator"), await h.user("reviewer")];
    const ds = await dataset(h, 1);
    const { image, annotation } = await annotate(ann, ds.id);
    const r = await claimReview(rev, ds.id);
    const claim_id = r.body.review.id;
    assertError(await decide(rev, image, { claim_id, decision: "fix" }), 400);
    assertError(
      await decide(rev, image, { claim_id, decision: "fix", annotation: { labels: ["horse"] } }),
      422,
      "unknown_label",
    );
    assertError(
      await decide(rev, image, {
        claim_id,
        decision: "fix",
        annotation: { shapes: [{ type: "point", label: "cat", x: 700, y: 1 }] },
      }),
      422,
      "out_of_bounds",
    );
    const res = await decide(rev, image, {
      claim_id,
      decision: "fix",
      annotation: { labels: ["dog"], shapes: [{ type: "point", label: "dog", x: 10, y: 10 }] },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.image.status, "accepted");
    assert.equal(res.body.fix.author_id, rev.id);
    assert.equal(res.body.fix.status, "accepted");
    const all = await annotations(h, image, true);
    assert.deepEqual(all.map((a) => [a.id, a.status]), [
      [annotation, "superseded"],
      [res.body.fix.id, "accepted"],
    ]);
    assert.equal(all[0].reviewed_by, rev.id);
    assert.deepEqual((await annotations(h, image)).map((a) => a.id), [res.body.fix.id]);
  },
);

withApp("a reviewer who became an annotator of the image cannot decide on it", async (h) => {
  const ann = await h.user("annotator");
  const ds = await dataset(h, 1);
  const { image } = await annotate(ann, ds.id);
  // The admin reviews, and meanwhile corrects the image itself: now one of its annotators.
  const r = await claimReview(h.admin, ds.id);
  assert.equal(r.status, 201);
  const corrected = await h.req("POST", `/api/v1/images/${image}/annotations`, {
    labels: ["dog"],
  });
  assert.equal(corrected.status, 201);
  for (const decision of ["fix", "accept"]) {
    assertError(
      await decide(h.admin, image, {
        claim_id: r.body.review.id,
        decision,
        ...(decision === "fix" ? { annotation: { labels: ["cat"] } } : {}),
      }),
      409,
      "own_annotation",
    );
  }
  assert.equal(await imageStatus(h, image), "in_review");
});

withApp(
  "a review lease that expired: accepted late while nobody took the image, refused after",
  async (h) => {
    const [ann, rev, rev2] = [
      await h.user("annotator"),
      await h.user("reviewer"),
      await h.user("reviewer"),
    ];
    const ds = await dataset(h, 3);
    const a = await annotate(ann, ds.id);
    const b = await annotate(ann, ds.id);
    const c = await annotate(ann, ds.id);
    // Late, but nobody took it: accepted.
    const r1 = await claimReview(rev, ds.id);
    assert.equal(r1.body.image.id, a.image);
    await expireReview(h, r1.body.review.id);
    const late = await decide(rev, a.image, { claim_id: r1.body.review.id, decision: "accept" });
    assert.equal(late.status, 200, JSON.stringify(late.body));
    // Late, and another reviewer has taken the image since: refused, theirs stands.
    const r2 = await claimReview(rev, ds.id);
    assert.equal(r2.body.image.id, b.image);
    await expireReview(h, r2.body.review.id);
    const taken = await claimReview(rev2, ds.id);
    assert.equal(taken.status, 201);
    assert.equal(taken.body.image.id, b.image);
    assertError(
      await decide(rev, b.image, { claim_id: r2.body.review.id, decision: "reject", comment: "x" }),
      409,
      "review_expired",
    );
    assertError(
      await rev.req("POST", `/api/v1/reviews/${r2.body.review.id}/renew`),
      409,
      "review_expired",
    );
    const ok = await decide(rev2, b.image, { claim_id: taken.body.review.id, decision: "accept" });
    assert.equal(ok.status, 200);
    // The expired review ends as such when its holder claims again.
    const next = await claimReview(rev, ds.id);
    assert.equal(next.status, 201);
    assert.equal(next.body.image.id, c.image);
    const ended = await rawOne<{ end_reason: string }>(
      h.db,
      "SELECT end_reason FROM ended_reviews WHERE claim_id = $1::bigint",
      [r2.body.review.id],
    );
    assert.equal(ended?.end_reason, "expired");
  },
);

withApp(
  "amendAnnotation: the author replaces their submission until the image is reviewed",
  async (h) => {
    const [ann, other, rev] = [
      await h.user("annotator"),
      await h.user("annotator"),
      await h.user("reviewer"),
    ];
    const ds = await dataset(h, 1);
    const { image, annotation } = await annotate(ann, ds.id);
    const amend = (u: TestUser, id: string, body: Record<string, unknown> = { labels: ["dog"] }) =>
      u.req("PUT", `/api/v1/annotations/${id}`, body);
    assertError(await amend(other, annotation), 403, "annotation_not_yours");
    assertError(await amend(ann, annotation, { labels: ["horse"] }), 422, "unknown_label");
    assertError(await amend(ann, "999999"), 404);
    const v2 = await amend(ann, annotation);
    assert.equal(v2.status, 201, JSON.stringify(v2.body));
    assert.notEqual(v2.body.id, annotation);
    assert.deepEqual(v2.body.labels, ["dog"]);
    assert.equal(v2.body.status, "submitted");
    assertError(await amend(ann, annotation), 409, "annotation_not_current");
    assert.deepEqual((await annotations(h, image, true)).map((a) => [a.id, a.status]), [
      [annotation, "superseded"],
      [v2.body.id, "submitted"],
    ]);
    // Under review: no more amendments; the reviewer sees the amended one.
    const r = await claimReview(rev, ds.id);
    assert.deepEqual(r.body.annotations.map((a: { id: string }) => a.id), [v2.body.id]);
    assertError(await amend(ann, v2.body.id), 409, "image_in_review");
    await decide(rev, image, { claim_id: r.body.review.id, decision: "accept" });
    assertError(await amend(ann, v2.body.id), 409, "annotation_not_current");
  },
);

withApp(
  "corrections supersede: an admin's correction, and a machine's re-pushed prediction",
  async (h) => {
    const [ann, machine] = [await h.user("annotator"), await h.user("machine")];
    const ds = await dataset(h, 1, { rate: 0 });
    const { image, annotation } = await annotate(ann, ds.id);
    const fix = await h.req("POST", `/api/v1/images/${image}/annotations`, { labels: ["dog"] });
    assert.equal(fix.status, 201);
    assert.deepEqual((await annotations(h, image)).map((a) => a.id), [fix.body.id]);
    const all = await annotations(h, image, true);
    assert.deepEqual(all.map((a) => [a.id, a.status, a.reviewed_by]), [
      [annotation, "superseded", h.admin.id],
      [fix.body.id, "submitted", null],
    ]);

    const push = (name: string, version: string) =>
      machine.req("POST", `/api/v1/images/${image}/annotations`, {
        model: { name, version },
        labels: ["cat"],
      });
    const p1 = await push("det", "1");
    const q1 = await push("seg", "1");
    const p2 = await push("det", "2");
    const bulk = await machine.req("POST", `/api/v1/datasets/${ds.id}/predictions`, {
      predictions: [
        { image_id: image, model: { name: "seg", version: "2" }, labels: ["dog"] },
        { image_id: image, model: { name: "seg", version: "3" }, labels: ["cat"] },
      ],
    });
    assert.equal(bulk.status, 200);
    const machines =
      (await h.req("GET", `/api/v1/images/${image}/annotations?source=machine&status=all`))
        .body.items as { id: string; status: string; model: { name: string; version: string } }[];
    assert.deepEqual(
      machines.map((a) => [a.model.name, a.model.version, a.status]),
      [
        ["det", "1", "superseded"],
        ["seg", "1", "superseded"],
        ["det", "2", "submitted"],
        ["seg", "2", "superseded"],
        ["seg", "3", "submitted"],
      ],
    );
    assert.equal(machines[0].id, p1.body.id);
    assert.equal(machines[1].id, q1.body.id);
    assert.equal(machines[2].id, p2.body.id);
  },
);

withApp(
  "16 pushes of one model's prediction at once: all stored, exactly one current",
  async (h) => {
    const [machine, other] = [await h.user("machine"), await h.user("machine")];
    const ds = await dataset(h, 1, { rate: 0 });
    const [image] = ds.images;
    const pushes = await Promise.all(
      Array.from(
        { length: 16 },
        (_, i) =>
          (i % 2 ? machine : other).req("POST", `/api/v1/images/${image}/annotations`, {
            model: { name: "det", version: String(i) },
            labels: ["cat"],
          }),
      ),
    );
    assert.deepEqual(
      pushes.map((p) => p.status),
      Array(16).fill(201),
    );
    const all =
      (await h.req("GET", `/api/v1/images/${image}/annotations?source=machine&status=all`)).body
        .items as { id: string; status: string }[];
    assert.equal(all.length, 16);
    const current = all.filter((a) => a.status === "submitted");
    assert.equal(current.length, 1, JSON.stringify(all));
    // The current one is the last stored; every earlier one is superseded.
    assert.equal(current[0].id, all.at(-1)!.id);
  },
);

withApp("exportDataset: labeled by default, accepted on request, history on request", async (h) => {
  const [ann, rev] = [await h.user("annotator"), await h.user("reviewer")];
  const ds = await dataset(h, 3);
  const a = await annotate(ann, ds.id); // accepted
  const b = await annotate(ann, ds.id); // fixed
  // The third image is never annotated.
  let r = await claimReview(rev, ds.id);
  assert.equal(r.body.image.id, a.image);
  await decide(rev, a.image, { claim_id: r.body.review.id, decision: "accept" });
  r = await claimReview(rev, ds.id);
  const fixed = await decide(rev, b.image, {
    claim_id: r.body.review.id,
    decision: "fix",
    annotation: { labels: ["dog"] },
  });
  assert.equal(fixed.status, 200);
  const lines = async (query: string) => {
    const res = await h.req("GET", `/api/v1/datasets/${ds.id}/export?${query}`);
    assert.equal(res.status, 200);
    return (res.body as string).trim().split("\n").filter(Boolean).map((l) => JSON.parse(l));
  };
  const labeled = await lines("format=jsonl");
  assert.deepEqual(labeled.map((i) => i.id), [a.image, b.image]);
  assert.deepEqual(labeled[1].annotations.map((x: { id: string }) => x.id), [fixed.body.fix.id]);
  const all = await lines("status=all");
  assert.equal(all.length, 3);
  assert.deepEqual(all[2].annotations, []);
  const history = await lines("status=accepted&history=true");
  assert.deepEqual(history.map((i) => i.status), ["accepted", "accepted"]);
  assert.deepEqual(history[1].annotations.map((x: { status: string }) => x.status), [
    "superseded",
    "accepted",
  ]);
  const coco = await h.req("GET", `/api/v1/datasets/${ds.id}/export?format=coco&status=accepted`);
  assert.equal(coco.status, 200);
  assert.equal(coco.body.images.length, 2);
});

withApp("the changes feed delivers a status change again, after the cursor", async (h) => {
  const [ann, rev] = [await h.user("annotator"), await h.user("reviewer")];
  const ds = await dataset(h, 1);
  const { image, annotation } = await annotate(ann, ds.id);
  // Polled until the rows expected came (a poll may come back short: pollFeed says why).
  const feed = `/api/v1/datasets/${ds.id}/annotations?source=human`;
  type Row = { id: string; status: string };
  const first = await pollFeed(h, feed, null, 1);
  assert.deepEqual(first.items.map((i: Row) => [i.id, i.status]), [[annotation, "submitted"]]);
  const r = await claimReview(rev, ds.id);
  await decide(rev, image, { claim_id: r.body.review.id, decision: "reject", comment: "no" });
  const second = await pollFeed(h, feed, first.cursor, 1);
  assert.deepEqual(second.items.map((i: Row) => [i.id, i.status]), [[annotation, "rejected"]]);
  assert.deepEqual((await pollFeed(h, feed, second.cursor, 0)).items, []);
});

withApp(
  "the changes feed, in order: an amend, an accept, a fix, an admin's correction of an accepted image",
  async (h) => {
    const [ann, rev] = [await h.user("annotator"), await h.user("reviewer")];
    const ds = await dataset(h, 2);
    type Row = { id: string; status: string; image_id: string; author_id: string };
    const feed = `/api/v1/datasets/${ds.id}/annotations?source=human`;
    const one = await annotate(ann, ds.id);
    const two = await annotate(ann, ds.id);
    let cursor = (await pollFeed(h, feed, null, 2)).cursor;
    // The next `n` rows after the cursor (a poll may come back short: pollFeed says why).
    const next = async (n: number) => {
      const p = await pollFeed(h, feed, cursor, n);
      cursor = p.cursor;
      return p.items.map((i: Row) => [i.id, i.status]);
    };
    // The author amends the first: the old one superseded, the new one submitted.
    const amended = await ann.req("PUT", `/api/v1/annotations/${one.annotation}`, {
      labels: ["dog"],
    });
    assert.equal(amended.status, 201, JSON.stringify(amended.body));
    assert.deepEqual(await next(2), [[one.annotation, "superseded"], [
      amended.body.id,
      "submitted",
    ]]);
    // Accepted.
    let r = await claimReview(rev, ds.id);
    assert.equal(r.body.image.id, one.image);
    await decide(rev, one.image, { claim_id: r.body.review.id, decision: "accept" });
    assert.deepEqual(await next(1), [[amended.body.id, "accepted"]]);
    // Fixed: the reviewer's own annotation, accepted; the one it replaces superseded.
    r = await claimReview(rev, ds.id);
    const fixed = await decide(rev, two.image, {
      claim_id: r.body.review.id,
      decision: "fix",
      annotation: { labels: ["cat", "dog"] },
    });
    assert.equal(fixed.status, 200, JSON.stringify(fixed.body));
    const fix = await next(2);
    assert.deepEqual(fix.find(([id]) => id === two.annotation), [two.annotation, "superseded"]);
    assert.deepEqual(fix.filter(([, status]) => status === "accepted").length, 1);
    assert.equal(fix.length, 2);
    // An admin corrects the accepted first image: the correction is accepted (the admin vouches
    // for it), the accepted annotation superseded, the image stays accepted.
    const corrected = await h.req("POST", `/api/v1/images/${one.image}/annotations`, {
      labels: ["cat"],
    });
    assert.equal(corrected.status, 201, JSON.stringify(corrected.body));
    assert.equal(corrected.body.status, "accepted");
    assert.deepEqual(
      (await next(2)).sort(),
      [[amended.body.id, "superseded"], [corrected.body.id, "accepted"]].sort(),
    );
    assert.equal(await imageStatus(h, one.image), "accepted");
    assert.deepEqual(await next(0), []);
  },
);

withApp(
  "getDatasetStats counts review states, annotators' acceptance and reviewers' reviews",
  async (h) => {
    const [ann, ann2, rev] = [
      await h.user("annotator"),
      await h.user("annotator"),
      await h.user("reviewer"),
    ];
    const ds = await dataset(h, 4);
    const a = await annotate(ann, ds.id);
    const b = await annotate(ann, ds.id);
    await annotate(ann2, ds.id); // stays in review
    let r = await claimReview(rev, ds.id);
    await decide(rev, a.image, { claim_id: r.body.review.id, decision: "accept" });
    r = await claimReview(rev, ds.id);
    await decide(rev, b.image, { claim_id: r.body.review.id, decision: "reject", comment: "no" });
    const stats = await h.req("GET", `/api/v1/datasets/${ds.id}/stats`);
    assert.equal(stats.status, 200, JSON.stringify(stats.body));
    const s = stats.body;
    assert.equal(s.images, 4);
    assert.equal(s.accepted, 1);
    assert.equal(s.in_review, 1);
    assert.equal(s.rejected, 1);
    assert.equal(s.pending, 2);
    assert.equal(s.done, 0);
    const byUser = Object.fromEntries(
      s.annotators.map((x: { user_id: string }) => [x.user_id, x]),
    );
    assert.deepEqual(byUser[ann.id], {
      user_id: ann.id,
      annotations: 2,
      accepted: 1,
      rejected: 1,
      acceptance_rate: 0.5,
    });
    assert.deepEqual(byUser[ann2.id], {
      user_id: ann2.id,
      annotations: 1,
      accepted: 0,
      rejected: 0,
      acceptance_rate: null,
    });
    assert.deepEqual(s.reviewers, [{
      user_id: rev.id,
      reviews: 2,
      accepted: 1,
      fixed: 0,
      rejected: 1,
    }]);
  },
);

withApp(
  "review webhook events: review.accepted, review.rejected, review.fixed and image.completed on acceptance",
  async (h) => {
    const [ann, rev] = [await h.user("annotator"), await h.user("reviewer")];
    const ds = await dataset(h, 3);
    await rawExec(
      h.db,
      `INSERT INTO webhooks (url, events, dataset_id, secret)
       VALUES ('https://192.0.2.1/hook', ARRAY['review.accepted', 'review.rejected',
         'review.fixed', 'image.completed'], $1::bigint, '\\x00')`,
      [ds.id],
    );
    const images = [
      await annotate(ann, ds.id),
      await annotate(ann, ds.id),
      await annotate(ann, ds.id),
    ];
    // In review: no image.completed at the k-th annotation.
    const before = await rawOne<{ n: number }>(
      h.db,
      "SELECT count(*)::int AS n FROM webhook_deliveries",
    );
    assert.equal(before?.n, 0);
    const bodies = [
      { decision: "accept" },
      { decision: "reject", comment: "no" },
      { decision: "fix", annotation: { labels: ["dog"] } },
    ];
    for (const body of bodies) {
      const r = await claimReview(rev, ds.id);
      const res = await decide(rev, r.body.image.id, { claim_id: r.body.review.id, ...body });
      assert.equal(res.status, 200);
    }
    const events = await h.db.unsafe<{ event_type: string; image_id: string }[]>(
      `SELECT event_type, data->'image'->>'id' AS image_id FROM webhook_deliveries ORDER BY event_id`,
    );
    assert.deepEqual(events.map((e) => [e.event_type, e.image_id]), [
      ["review.accepted", images[0].image],
      ["image.completed", images[0].image],
      ["review.rejected", images[1].image],
      ["review.fixed", images[2].image],
      ["image.completed", images[2].image],
    ]);
  },
);
