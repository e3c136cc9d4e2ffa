/**
 * Priority order under concurrency, over HTTP: 32 annotators draining a dataset whose images all
 * have different priorities. Concurrency may reorder claims only as far as claims in flight can:
 * when a claim is answered, every higher-priority image not yet handed out must be one that
 * another annotator's request, still unanswered, has taken. Each annotator has one request at a
 * time, so at most 31 such images can exist (FOR UPDATE SKIP LOCKED skips only rows locked by a
 * concurrent claim). A claim that skipped an image nobody was taking would break that bound.
 */
import assert from "node:assert/strict";
import { createTestApp } from "./harness.ts";

const ANNOTATORS = 32;
const IMAGES = 320;

Deno.test("32 concurrent annotators claim in priority order", async () => {
  const h = await createTestApp({ poolMax: 16 });
  try {
    const annotators = await Promise.all(
      Array.from({ length: ANNOTATORS }, () => h.user("annotator")),
    );
    const ds = await h.req("POST", "/api/v1/datasets", {
      name: "priority-order",
      access: "open",
      labels: ["cat"],
      annotations_per_image: 1,
    });
    assert.equal(ds.status, 201);
    // Distinct priorities, registered in shuffled order so that age does not decide.
    const priorities = Array.from({ length: IMAGES }, (_, i) => i);
    for (let i = priorities.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [priorities[i], priorities[j]] = [priorities[j], priorities[i]];
    }
    const reg = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
      images: priorities.map((priority, i) => ({ uri: `s3://b/priority/${i}.jpg`, priority })),
    });
    assert.equal(reg.status, 200);

    /** Claimed priorities in the order the claims were answered. */
    const answered: number[] = [];
    const statuses = new Map<number, number>();
    await Promise.all(annotators.map(async (u) => {
      for (;;) {
        const c = await u.req("POST", `/api/v1/datasets/${ds.body.id}/claims`);
        statuses.set(c.status, (statuses.get(c.status) ?? 0) + 1);
        if (c.status !== 201) return;
        answered.push(c.body.image.priority);
        const s = await u.req("POST", `/api/v1/images/${c.body.claim.image_id}/annotations`, {
          claim_id: c.body.claim.id,
          labels: ["cat"],
        });
        assert.equal(s.status, 201, JSON.stringify(s.body));
      }
    }));

    // At each answer: the higher priorities not yet answered, which only claims still in
    // flight (one per other annotator) can account for.
    const waiting = new Set(priorities);
    let worst = 0;
    const breaches: string[] = [];
    answered.forEach((p, i) => {
      waiting.delete(p);
      const higher = [...waiting].filter((q) => q > p).length;
      worst = Math.max(worst, higher);
      if (higher > ANNOTATORS - 1) {
        breaches.push(`#${i}: priority ${p} while ${higher} higher ones were unclaimed`);
      }
    });
    assert.deepEqual(
      breaches.slice(0, 10),
      [],
      `${breaches.length} claims passed over more higher-priority images than claims in flight`,
    );
    assert.ok(worst <= ANNOTATORS - 1, `worst: ${worst}`);

    // Every image handed out exactly once; 204 only at the end.
    assert.equal(
      answered.length,
      IMAGES,
      `${answered.length} of ${IMAGES} images claimed; statuses ${JSON.stringify([...statuses])}`,
    );
    assert.equal(new Set(answered).size, IMAGES, "no image claimed twice");
    assert.deepEqual([...statuses.keys()].sort(), [201, 204]);
  } finally {
    await h.close();
  }
});
