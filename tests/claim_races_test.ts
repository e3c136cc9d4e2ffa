/**
 * Races around a lease's expiry that only a held lock can make reliable: a statement that began
 * before the lease ran out, held up (here by a row lock another connection keeps) until someone
 * else has taken the image. `deno task stress` (stress/scenarios/claims.ts) provokes the same
 * race under load by row-locking claims at their expiry, and audits every image's holders.
 */
import assert from "node:assert/strict";
import { setClaimExpiry, type TestApp, type TestUser, withApp } from "./harness.ts";

let seq = 0;

async function oneImageDataset(h: TestApp): Promise<{ id: string; image: string }> {
  const ds = await h.req("POST", "/api/v1/datasets", {
    name: `races-${++seq}`,
    access: "open",
    labels: ["cat"],
    annotations_per_image: 1,
  });
  const reg = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
    images: [{ uri: `s3://b/races/${seq}.jpg` }],
  });
  return { id: ds.body.id, image: reg.body.images[0].id };
}

/** Live leases on an image, by user. */
async function liveHolders(h: TestApp, imageId: string): Promise<string[]> {
  const rows = await h.db.unsafe(
    `SELECT (l).user_id::text AS user_id FROM images i, unnest(i.leases) l
     WHERE i.id = $1::bigint AND (l).expires_at > now() ORDER BY 1`,
    [imageId],
  );
  return rows.map((r) => r.user_id);
}

/** Waits until `n` backends wait on a lock (the held-up statements have started). */
async function untilBlocked(h: TestApp, n = 1): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const [row] = await h.db.unsafe(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND wait_event_type = 'Lock'`,
    );
    if (row.n >= n) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("the statement never blocked");
}

/**
 * Starts `action` while another connection holds a lock on claim `claimId`, lets the claim's
 * lease run out, has `thief` claim the image, then lets `action` go on.
 */
async function heldUpAcrossExpiry<T>(
  h: TestApp,
  ds: { id: string; image: string },
  claimId: string,
  thief: TestUser,
  action: () => Promise<T>,
): Promise<{ result: T; stolen: { status: number; body: { claim: { image_id: string } } } }> {
  await setClaimExpiry(h.db, claimId, 400);
  const locker = await h.db.reserve();
  try {
    await locker.unsafe("BEGIN");
    await locker.unsafe(
      "SELECT 1 FROM current_claims WHERE claim_id = $1::bigint FOR UPDATE",
      [claimId],
    );
    const pending = action();
    await untilBlocked(h);
    await new Promise((r) => setTimeout(r, 600)); // the lease has expired now
    const stolen = await thief.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    await locker.unsafe("ROLLBACK");
    return { result: await pending, stolen };
  } finally {
    locker.release();
  }
}

withApp(
  "lease expiry races: a renew that started before expiry does not win once another annotator took the image",
  async (h) => {
    const ds = await oneImageDataset(h);
    const [a, b] = [await h.user("annotator"), await h.user("annotator")];
    const claim = (await a.req("POST", `/api/v1/datasets/${ds.id}/claims`)).body.claim;
    const { result: renew, stolen } = await heldUpAcrossExpiry(
      h,
      ds,
      claim.id,
      b,
      () => a.req("POST", `/api/v1/claims/${claim.id}/renew`),
    );
    assert.equal(stolen.status, 201, "the expired lease went to the next caller");
    assert.equal(stolen.body.claim.image_id, ds.image);
    assert.equal(renew.status, 409, `renew answered ${JSON.stringify(renew.body)}`);
    assert.equal(renew.body.error.code, "claim_expired");
    assert.deepEqual(await liveHolders(h, ds.image), [b.id], "one holder at a time");
  },
);

withApp(
  "lease expiry races: a submit that started before expiry does not win once another annotator took the image",
  async (h) => {
    const ds = await oneImageDataset(h);
    const [a, b] = [await h.user("annotator"), await h.user("annotator")];
    const claim = (await a.req("POST", `/api/v1/datasets/${ds.id}/claims`)).body.claim;
    const { result: submit, stolen } = await heldUpAcrossExpiry(
      h,
      ds,
      claim.id,
      b,
      () =>
        a.req("POST", `/api/v1/images/${ds.image}/annotations`, {
          claim_id: claim.id,
          labels: ["cat"],
        }),
    );
    assert.equal(stolen.status, 201);
    assert.equal(submit.status, 409, `submit answered ${JSON.stringify(submit.body)}`);
    assert.equal(submit.body.error.code, "claim_expired");
    assert.deepEqual(await liveHolders(h, ds.image), [b.id]);
  },
);

withApp(
  "lease expiry races: a submit held up behind a change of annotations_per_image judges by the new value",
  async (h) => {
    const ds = await oneImageDataset(h);
    const a = await h.user("annotator");
    const claim = (await a.req("POST", `/api/v1/datasets/${ds.id}/claims`)).body.claim;
    const locker = await h.db.reserve();
    try {
      await locker.unsafe("BEGIN");
      await locker.unsafe("SELECT 1 FROM images WHERE id = $1::bigint FOR UPDATE", [ds.image]);
      // k 1 -> 2 queues for the image row first, then the submit (whose snapshot still
      // says k = 1) queues behind it.
      const raised = h.req("PATCH", `/api/v1/datasets/${ds.id}`, { annotations_per_image: 2 });
      await untilBlocked(h);
      const submit = a.req("POST", `/api/v1/images/${ds.image}/annotations`, {
        claim_id: claim.id,
        labels: ["cat"],
      });
      await untilBlocked(h, 2);
      await locker.unsafe("ROLLBACK");
      assert.equal((await raised).status, 200);
      assert.equal((await submit).status, 201);
    } finally {
      locker.release();
    }
    const [row] = await h.db.unsafe(
      "SELECT done, annotations_per_image AS k FROM images WHERE id = $1::bigint",
      [ds.image],
    );
    assert.deepEqual(row, { done: false, k: 2 }, "one annotation of two: not done");
    const b = await h.user("annotator");
    const next = await b.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    assert.equal(next.status, 201, "the image still wants a second annotator");
    assert.equal(next.body.image.id, ds.image);
  },
);
