/**
 * Review races with real concurrent connections (the app's pool): reviewers claiming at once never
 * share an image; an amendment racing a review claim is either seen by the reviewer or refused,
 * and a reject racing an amendment leaves no current annotation behind; a submit held up across
 * its lease's expiry loses to the reviewer who took the image meanwhile. Two server processes:
 * tests/review_processes_test.ts.
 */
import assert from "node:assert/strict";
import { createTestApp, rawExec, rawOne, type TestApp, type TestUser } from "./harness.ts";

let seq = 0;

/** An open dataset of `n` images, all sent to review once annotated, each annotated once. */
async function reviewedDataset(
  h: TestApp,
  n: number,
  annotator: TestUser,
): Promise<{ id: string; images: string[]; annotations: Map<string, string> }> {
  const ds = await h.req("POST", "/api/v1/datasets", {
    name: `review-races-${++seq}`,
    labels: ["cat", "dog"],
    review_rate: 1,
    access: "open",
  });
  assert.equal(ds.status, 201, JSON.stringify(ds.body));
  const reg = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
    images: Array.from({ length: n }, (_, i) => ({ uri: `s3://b/rr/${seq}/${i}.jpg` })),
  });
  const annotations = new Map<string, string>();
  for (let i = 0; i < n; i++) {
    const c = await annotator.req("POST", `/api/v1/datasets/${ds.body.id}/claims`);
    const a = await annotator.req("POST", `/api/v1/images/${c.body.image.id}/annotations`, {
      claim_id: c.body.claim.id,
      labels: ["cat"],
    });
    assert.equal(a.status, 201);
    annotations.set(c.body.image.id, a.body.id);
  }
  return {
    id: ds.body.id,
    images: reg.body.images.map((i: { id: string }) => i.id),
    annotations,
  };
}

/** Waits until `n` backends wait on a lock (the held-up statement has started). */
async function untilBlocked(h: TestApp, n = 1): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const [row] = await h.db.unsafe(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND wait_event_type = 'Lock'`,
    );
    if (row.n >= n) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("the statement never blocked");
}

Deno.test("eight reviewers claiming at once never share an image, and each is reviewed once", async () => {
  const h = await createTestApp({ poolMax: 10 });
  try {
    const ann = await h.user("annotator");
    const ds = await reviewedDataset(h, 60, ann);
    const reviewers = await Promise.all(Array.from({ length: 8 }, () => h.user("reviewer")));
    const leased = new Map<string, string>(); // image -> reviewer holding it now
    const decided: string[] = [];
    const clashes: string[] = [];
    await Promise.all(reviewers.map(async (rev) => {
      for (;;) {
        const r = await rev.req("POST", `/api/v1/datasets/${ds.id}/reviews`);
        if (r.status === 204) return;
        assert.equal(r.status, 201, JSON.stringify(r.body));
        const image = r.body.image.id;
        if (leased.has(image)) clashes.push(`${image}: ${leased.get(image)} and ${rev.id}`);
        leased.set(image, rev.id);
        // Yield, so the others claim while this one holds its lease.
        await new Promise((res) => setTimeout(res, Math.random() * 5));
        const s = await rev.req("POST", `/api/v1/images/${image}/reviews`, {
          claim_id: r.body.review.id,
          decision: "accept",
        });
        assert.equal(s.status, 200, JSON.stringify(s.body));
        leased.delete(image);
        decided.push(image);
      }
    }));
    assert.deepEqual(clashes, []);
    assert.equal(decided.length, 60);
    assert.equal(new Set(decided).size, 60);
    const twice = await rawOne<{ n: number }>(
      h.db,
      `SELECT count(*)::int AS n FROM (
         SELECT image_id FROM ended_reviews WHERE dataset_id = $1::bigint
           AND end_reason = 'completed' GROUP BY image_id HAVING count(*) > 1
       ) t`,
      [ds.id],
    );
    assert.equal(twice?.n, 0);
  } finally {
    await h.close();
  }
});

Deno.test("an amendment racing a review claim: the reviewer sees it, or it is refused", async () => {
  const h = await createTestApp({ poolMax: 10 });
  try {
    const ann = await h.user("annotator");
    const rev = await h.user("reviewer");
    const outcomes: number[] = [];
    for (let i = 0; i < 20; i++) {
      // One image per round: a claim that finds it locked by the amendment retries it.
      const ds = await reviewedDataset(h, 1, ann);
      const [image] = ds.images;
      const [review, amended] = await Promise.all([
        rev.req("POST", `/api/v1/datasets/${ds.id}/reviews`),
        ann.req("PUT", `/api/v1/annotations/${ds.annotations.get(image)}`, { labels: ["dog"] }),
      ]);
      assert.equal(review.status, 201, JSON.stringify(review.body));
      assert.ok([201, 409].includes(amended.status), JSON.stringify(amended.body));
      if (amended.status === 409) assert.equal(amended.body.error.code, "image_in_review");
      outcomes.push(amended.status);
      // What the reviewer was shown is exactly what is current, and what a reject rejects.
      const current = (await h.req("GET", `/api/v1/images/${image}/annotations`)).body.items;
      assert.deepEqual(
        review.body.annotations.map((a: { id: string }) => a.id),
        current.map((a: { id: string }) => a.id),
      );
      if (amended.status === 201) assert.equal(current[0].id, amended.body.id);
      const rejected = await rev.req("POST", `/api/v1/images/${image}/reviews`, {
        claim_id: review.body.review.id,
        decision: "reject",
        comment: "redo",
      });
      assert.equal(rejected.status, 200);
      assert.deepEqual(
        (await h.req("GET", `/api/v1/images/${image}/annotations`)).body.items,
        [],
        "nothing current is left behind",
      );
    }
    assert.equal(outcomes.length, 20);
  } finally {
    await h.close();
  }
});

Deno.test("a reject racing the annotator's amendment: nothing current survives the reject", async () => {
  const h = await createTestApp({ poolMax: 10 });
  try {
    const ann = await h.user("annotator");
    const rev = await h.user("reviewer");
    const ds = await reviewedDataset(h, 10, ann);
    for (let i = 0; i < 10; i++) {
      const review = await rev.req("POST", `/api/v1/datasets/${ds.id}/reviews`);
      const image = review.body.image.id;
      // The reviewer's lease is live: the amendment must not slip in under it, whichever
      // statement reaches the image row first.
      const [rejected, amended] = await Promise.all([
        rev.req("POST", `/api/v1/images/${image}/reviews`, {
          claim_id: review.body.review.id,
          decision: "reject",
          comment: "no",
        }),
        ann.req("PUT", `/api/v1/annotations/${ds.annotations.get(image)}`, { labels: ["dog"] }),
      ]);
      assert.equal(rejected.status, 200, JSON.stringify(rejected.body));
      assert.equal(amended.status, 409, JSON.stringify(amended.body));
      // Refused under the lease; told why from what it reads next, which the reject may have
      // changed already: then "changed meanwhile", and a retry gets the final answer.
      assert.ok(
        ["image_in_review", "annotation_not_current", "conflict"].includes(amended.body.error.code),
        amended.body.error.code,
      );
      const again = await ann.req("PUT", `/api/v1/annotations/${ds.annotations.get(image)}`, {
        labels: ["dog"],
      });
      assert.equal(again.status, 409);
      assert.equal(again.body.error.code, "annotation_not_current");
      const all = (await h.req("GET", `/api/v1/images/${image}/annotations?status=all`)).body
        .items as { status: string }[];
      assert.deepEqual(all.map((a) => a.status), ["rejected"]);
    }
  } finally {
    await h.close();
  }
});

Deno.test("a review submit held up across its lease's expiry loses to the reviewer who took the image", async () => {
  const h = await createTestApp({ poolMax: 10 });
  try {
    const ann = await h.user("annotator");
    const [a, b] = [await h.user("reviewer"), await h.user("reviewer")];
    const ds = await reviewedDataset(h, 1, ann);
    const review = (await a.req("POST", `/api/v1/datasets/${ds.id}/reviews`)).body.review;
    // The lease runs out in 400 ms; meanwhile a's submit waits for a's current_reviews row.
    await rawExec(
      h.db,
      `WITH r AS (
         UPDATE current_reviews SET expires_at = now() + interval '400 milliseconds'
         WHERE claim_id = $1::bigint RETURNING image_id, claim_id, user_id, expires_at
       )
       UPDATE images i SET review_lease = ROW(r.claim_id, r.user_id, r.expires_at)::lease
       FROM r WHERE i.id = r.image_id`,
      [review.id],
    );
    const locker = await h.db.reserve();
    try {
      await locker.unsafe("BEGIN");
      await locker.unsafe(
        "SELECT 1 FROM current_reviews WHERE claim_id = $1::bigint FOR UPDATE",
        [review.id],
      );
      const late = a.req("POST", `/api/v1/images/${review.image_id}/reviews`, {
        claim_id: review.id,
        decision: "accept",
      });
      await untilBlocked(h);
      await new Promise((r) => setTimeout(r, 600)); // the lease has expired now
      const stolen = await b.req("POST", `/api/v1/datasets/${ds.id}/reviews`);
      await locker.unsafe("ROLLBACK");
      assert.equal(stolen.status, 201, "the expired lease went to the next reviewer");
      assert.equal(stolen.body.image.id, review.image_id);
      const refused = await late;
      assert.equal(refused.status, 409, JSON.stringify(refused.body));
      assert.equal(refused.body.error.code, "review_expired");
      const [row] = await h.db.unsafe(
        "SELECT review, (review_lease).user_id::text AS holder FROM images WHERE id = $1::bigint",
        [review.image_id],
      );
      assert.deepEqual(row, { review: "waiting", holder: b.id }, "b holds it, undecided");
      const ok = await b.req("POST", `/api/v1/images/${review.image_id}/reviews`, {
        claim_id: stolen.body.review.id,
        decision: "accept",
      });
      assert.equal(ok.status, 200);
    } finally {
      locker.release();
    }
  } finally {
    await h.close();
  }
});
