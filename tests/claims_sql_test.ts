/**
 * The claim loop at the query level: sql/claims/* and create_human_annotation against a real
 * database, with real concurrent connections (and two pools standing in for two server processes).
 */
import assert from "node:assert/strict";
import { connect, type Db, type Handle } from "../lib/db/pool.ts";
import { transaction } from "../lib/db/query.ts";
import { statement } from "../lib/db/statement.ts";
import { Batcher } from "../lib/db/batcher.ts";
import {
  type Annotation,
  type ClaimedHumanAnnotation,
  createHumanAnnotation,
  createHumanAnnotations,
  type CreateHumanAnnotationsParams,
} from "../sql/annotations/queries.ts";
import {
  claimNextImage,
  type ClaimNextImageParams,
  claimNextImages,
  type ClaimOutcome,
} from "../sql/claims/queries.ts";
import { getLease, releaseLease, renewLease } from "../sql/leases/queries.ts";
import { claimNextReview, type ClaimNextReviewParams } from "../sql/reviews/queries.ts";
import { createDataset, updateDataset } from "../sql/datasets/queries.ts";
import {
  getImage,
  imageBatch,
  type ImageStatus,
  listImages,
  registerImages,
  setAnnotationsPerImage,
  updateImage,
} from "../sql/images/queries.ts";
import {
  annotators,
  rawExec,
  rawMany,
  rawOne,
  SEES_ALL,
  setClaimExpiry,
  withDb,
} from "./harness.ts";
import { assertReadsThrough, checkPlans, type PlanNode, planNodes } from "./plans.ts";

let seq = 0;

async function newDataset(
  db: Handle,
  opts: { k?: number; ttl?: number; priorities: number[] },
): Promise<{ id: string; images: string[] }> {
  const ds = await createDataset(db, {
    name: `claims-${++seq}`,
    description: null,
    labels: ["cat", "dog"],
    annotations_per_image: opts.k ?? 1,
    claim_ttl_seconds: opts.ttl ?? 900,
    access: "open",
  });
  const images: string[] = [];
  for (let i = 0; i < opts.priorities.length; i += 10_000) {
    const batch = opts.priorities.slice(i, i + 10_000);
    const rows = await registerImages(
      db,
      imageBatch(
        ds!.id,
        batch.map((priority, j) => ({ uri: `s3://bucket/${seq}/${i + j}.jpg`, priority })),
        SEES_ALL,
      ),
    );
    images.push(...rows.map((r) => r.id!));
  }
  return { id: ds!.id, images };
}

async function newUsers(db: Handle, n: number, role = "annotator"): Promise<string[]> {
  const rows = await rawMany<{ id: string }>(
    db,
    `INSERT INTO users (name, role)
     SELECT 'user-' || $1::integer || '-' || g, $2::text FROM generate_series(1, $3::integer) g
     RETURNING id::text`,
    [++seq, role, n],
  );
  return rows.map((r) => r.id);
}

/** Claims, retrying a 'conflict' (a concurrent claim by the same user) as callers are told to. */
async function claim(
  db: Handle,
  datasetId: string,
  userId: string,
): Promise<Exclude<ClaimOutcome, { state: "conflict" }> | null> {
  for (;;) {
    const r = await claimNextImage(db, {
      dataset_id: datasetId,
      user_id: userId,
      caller_role: "annotator",
    });
    if (r?.state !== "conflict") return r;
  }
}

function annotate(db: Handle, claimId: string | null, imageId: string, userId: string) {
  return createHumanAnnotation(db, {
    caller_role: "annotator",
    claim_id: claimId,
    image_id: imageId,
    user_id: userId,
    labels: ["cat"],
    shapes: [{ type: "point", label: "cat", x: 1, y: 2 }],
  });
}

async function status(db: Handle, imageId: string): Promise<ImageStatus> {
  return (await getImage(db, { id: imageId, ...SEES_ALL }))!.status;
}

function activeClaims(db: Handle, datasetId: string) {
  return rawMany<{ id: string; image_id: string; user_id: string }>(
    db,
    `SELECT id::text, image_id::text, user_id::text FROM claims
     WHERE dataset_id = $1::bigint AND active ORDER BY id`,
    [datasetId],
  );
}

function delay(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

withDb(
  "claim query: highest priority first, then oldest; nothing left gives null",
  async ({ db }) => {
    const ds = await newDataset(db, { priorities: [0, 5, 5, 1, -2] });
    const users = await newUsers(db, 6);
    const got: string[] = [];
    for (const u of users.slice(0, 5)) {
      const r = await claim(db, ds.id, u);
      assert.equal(r?.state, "new");
      assert.equal(r.claim.user_id, u);
      assert.equal(r.claim.image_id, r.image.id);
      assert.equal(r.claim.dataset_id, ds.id);
      assert.equal(r.image.status, "in_progress");
      assert.ok(r.claim.expires_at.getTime() - r.claim.created_at.getTime() === 900_000);
      got.push(r.image.id);
    }
    const [p0, p5a, p5b, p1, pm2] = ds.images;
    assert.deepEqual(got, [p5a, p5b, p1, p0, pm2]);
    assert.equal(
      await claimNextImage(db, { dataset_id: ds.id, user_id: users[5], caller_role: "annotator" }),
      null,
    );
    assert.equal(
      await claimNextImage(db, {
        dataset_id: "999999",
        user_id: users[5],
        caller_role: "annotator",
      }),
      null,
      "unknown dataset",
    );
  },
);

withDb("claim query: a held claim comes back unchanged ('held')", async ({ db }) => {
  const ds = await newDataset(db, { priorities: [1, 2, 3] });
  const [u] = await newUsers(db, 1);
  const first = await claim(db, ds.id, u);
  const again = await claim(db, ds.id, u);
  assert.equal(first?.state, "new");
  assert.equal(again?.state, "held");
  assert.equal(again.claim.id, first.claim.id);
  assert.deepEqual(again.claim, first.claim);
  assert.equal(again.image.id, ds.images[2]);
  assert.equal(again.image.status, "in_progress");
  assert.equal((await activeClaims(db, ds.id)).length, 1);
});

withDb("claim query: five concurrent claims by one user give one claim", async ({ db }) => {
  for (let round = 0; round < 5; round++) {
    const ds = await newDataset(db, { priorities: Array(20).fill(0) });
    const [u] = await newUsers(db, 1);
    const raw = await Promise.all(
      Array.from(
        { length: 5 },
        () => claimNextImage(db, { dataset_id: ds.id, user_id: u, caller_role: "annotator" }),
      ),
    );
    assert.ok(raw.every((r) => r !== null));
    assert.equal(raw.filter((r) => r?.state === "new").length, 1, JSON.stringify(raw));
    const settled = await Promise.all(raw.map(() => claim(db, ds.id, u)));
    const ids = new Set(settled.map((r) => r!.claim.id));
    assert.equal(ids.size, 1);
    assert.ok(settled.every((r) => r!.state === "held"));
    const active = await activeClaims(db, ds.id);
    assert.equal(active.length, 1);
    assert.equal(active[0].id, [...ids][0]);
    const leased = await rawMany<{ id: string }>(
      db,
      `SELECT id::text FROM images WHERE dataset_id = $1::bigint AND leases <> '{}'`,
      [ds.id],
    );
    assert.deepEqual(leased.map((r) => r.id), [active[0].image_id], "no image hoarded");
  }
});

withDb(
  "claim query: release frees the image at once; only the holder (or admin) releases",
  async ({ db }) => {
    const ds = await newDataset(db, { priorities: [3, 2] });
    const [a, b] = await newUsers(db, 2);
    const ca = await claim(db, ds.id, a);
    assert.equal(ca?.image.id, ds.images[0]);
    assert.equal(
      await releaseLease(db, {
        kind: "annotate",
        claim_id: ca.claim.id,
        user_id: b,
        caller_id: b,
        caller_role: "annotator",
      }),
      null,
      "not b's claim",
    );
    const released = await releaseLease(db, {
      kind: "annotate",
      claim_id: ca.claim.id,
      user_id: a,
      caller_id: a,
      caller_role: "annotator",
    });
    assert.equal(released?.id, ca.claim.id);
    assert.equal(released.active, false);
    assert.equal(released.end_reason, "released");
    assert.equal(released.live, false);
    assert.equal(
      await releaseLease(db, {
        kind: "annotate",
        claim_id: ca.claim.id,
        user_id: a,
        caller_id: a,
        caller_role: "annotator",
      }),
      null,
      "already released",
    );
    assert.equal(await status(db, ds.images[0]), "pending");
    const cb = await claim(db, ds.id, b);
    assert.equal(cb?.image.id, ds.images[0], "claimable again at once");
    assert.equal(
      (await releaseLease(db, {
        kind: "annotate",
        claim_id: cb.claim.id,
        user_id: b,
        caller_id: b,
        caller_role: "annotator",
      }))?.end_reason,
      "released",
    );
    // The releaser may claim again too, and gets the same image back.
    assert.equal((await claim(db, ds.id, a))?.image.id, ds.images[0]);
    assert.equal(await annotate(db, ca.claim.id, ds.images[0], a), null, "a released claim");
  },
);

withDb("claim query: renew extends the claim and its lease; holder only", async ({ db }) => {
  const ds = await newDataset(db, { ttl: 60, priorities: [1] });
  const [a, b] = await newUsers(db, 2);
  const c = await claim(db, ds.id, a);
  await rawExec(
    db,
    `UPDATE current_claims SET expires_at = expires_at - interval '30 seconds'
         WHERE claim_id = $1::bigint`,
    [c!.claim.id],
  );
  assert.equal(
    await renewLease(db, {
      kind: "annotate",
      claim_id: c!.claim.id,
      user_id: b,
      caller_role: "annotator",
    }),
    null,
    "not b's claim",
  );
  const renewed = await renewLease(db, {
    kind: "annotate",
    claim_id: c!.claim.id,
    user_id: a,
    caller_role: "annotator",
  });
  assert.ok(renewed);
  assert.equal(renewed.live, true);
  assert.ok(renewed.expires_at > new Date(c!.claim.expires_at.getTime() - 30_000));
  assert.ok(renewed.expires_at >= c!.claim.expires_at);
  const lease = await rawOne<{ expires_at: Date; n: number }>(
    db,
    `SELECT max(l.expires_at) AS expires_at, count(*)::integer AS n
         FROM images i, unnest(i.leases) l WHERE i.id = $1::bigint`,
    [ds.images[0]],
  );
  assert.equal(lease?.n, 1);
  assert.equal(lease.expires_at.getTime(), renewed.expires_at.getTime());
  // The claim as getLease reads it, and the image's URI (for the answer's fresh media).
  const { image_uri, ...claimRow } = renewed;
  assert.equal(image_uri, c!.image.uri);
  assert.deepEqual(
    await getLease(db, { kind: "annotate", id: c!.claim.id, ...SEES_ALL }),
    claimRow,
  );
  await releaseLease(db, {
    kind: "annotate",
    claim_id: c!.claim.id,
    user_id: a,
    caller_id: a,
    caller_role: "annotator",
  });
  assert.equal(
    await renewLease(db, {
      kind: "annotate",
      claim_id: c!.claim.id,
      user_id: a,
      caller_role: "annotator",
    }),
    null,
    "not active",
  );
});

withDb(
  "claim query: an expired lease goes to the next caller; the late submit is rejected",
  async ({ db }) => {
    const ds = await newDataset(db, { ttl: 30, priorities: [9, 1] });
    const [a, b] = await newUsers(db, 2);
    const ca = await claim(db, ds.id, a);
    assert.equal(ca?.image.id, ds.images[0]);
    assert.equal(await setClaimExpiry(db, ca.claim.id, -1000), 1);
    const expired = await getLease(db, { kind: "annotate", id: ca.claim.id, ...SEES_ALL });
    assert.equal(expired?.active, true);
    assert.equal(expired.live, false);
    assert.equal(await status(db, ds.images[0]), "pending", "an expired lease does not count");

    const cb = await claim(db, ds.id, b);
    assert.equal(cb?.image.id, ds.images[0], "handed to the next caller");
    assert.equal(await annotate(db, ca.claim.id, ds.images[0], a), null, "slot taken");
    assert.equal(
      await renewLease(db, {
        kind: "annotate",
        claim_id: ca.claim.id,
        user_id: a,
        caller_role: "annotator",
      }),
      null,
      "slot taken",
    );
    assert.ok(await annotate(db, cb.claim.id, ds.images[0], b));
    assert.equal(await status(db, ds.images[0]), "done");

    // a's next claim ends its expired one and gives a new one.
    const next = await claim(db, ds.id, a);
    assert.equal(next?.state, "new");
    assert.equal(next.image.id, ds.images[1]);
    const old = await getLease(db, { kind: "annotate", id: ca.claim.id, ...SEES_ALL });
    assert.equal(old?.active, false);
    assert.equal(old.end_reason, "expired");
  },
);

/** A webhook on claim.expired, made directly. */
async function claimExpiredWebhook(db: Handle): Promise<void> {
  await rawExec(
    db,
    `INSERT INTO webhooks (url, events, secret)
     VALUES ('https://hooks.example.com/', '{claim.expired}', '\\x00')`,
  );
}

/** The claim ids of the claim.expired events queued, in event order. */
async function expiredEvents(db: Handle): Promise<string[]> {
  const rows = await rawMany<{ id: string }>(
    db,
    `SELECT data -> 'claim' ->> 'id' AS id FROM webhook_deliveries
     WHERE event_type = 'claim.expired' ORDER BY event_id`,
    [],
  );
  return rows.map((r) => r.id);
}

/**
 * A dataset of two images (the first first) with a webhook on claim.expired, two annotators, and
 * a's claim on the first image, expired.
 */
async function expiredClaim(db: Handle) {
  const ds = await newDataset(db, { ttl: 30, priorities: [1, 0] });
  const [a, b] = await newUsers(db, 2);
  await claimExpiredWebhook(db);
  const ca = (await claim(db, ds.id, a))!;
  await setClaimExpiry(db, ca.claim.id, -1000);
  return { ds, a, b, ca };
}

/** Its holder renews claim `claimId` (null: refused). */
function renewClaim(db: Handle, claimId: string, userId: string) {
  return renewLease(db, {
    kind: "annotate",
    claim_id: claimId,
    user_id: userId,
    caller_role: "annotator",
  });
}

/** Its holder releases claim `claimId`. */
function releaseClaim(db: Handle, claimId: string, userId: string) {
  return releaseLease(db, {
    kind: "annotate",
    claim_id: claimId,
    user_id: userId,
    caller_id: userId,
    caller_role: "annotator",
  });
}

/** The claim ids of the leases image `imageId`'s row lists, live or expired, sorted. */
async function listedLeases(db: Handle, imageId: string): Promise<string[]> {
  const rows = await rawMany<{ id: string }>(
    db,
    "SELECT (unnest(leases)).claim_id::text AS id FROM images WHERE id = $1::bigint",
    [imageId],
  );
  return rows.map((r) => r.id).sort();
}

/** How many times a claim entered ended_claims (a claim ends once). */
async function endedRows(db: Handle, claimId: string): Promise<string[]> {
  const rows = await rawMany<{ end_reason: string }>(
    db,
    "SELECT end_reason FROM ended_claims WHERE claim_id = $1::bigint",
    [claimId],
  );
  return rows.map((r) => r.end_reason);
}

withDb(
  "claim query: a claim whose slot someone takes after it expired ends then, as 'expired', for good",
  async ({ db }) => {
    const { ds, a, b, ca } = await expiredClaim(db);
    const cb = await claim(db, ds.id, b);
    assert.equal(cb?.image.id, ds.images[0], "a's expired lease does not hold the image");
    const ended = await getLease(db, { kind: "annotate", id: ca!.claim.id, ...SEES_ALL });
    assert.equal(ended?.active, false);
    assert.equal(ended?.end_reason, "expired");
    assert.deepEqual(await endedRows(db, ca!.claim.id), ["expired"]);
    assert.deepEqual(await expiredEvents(db), [ca!.claim.id]);
    // b lets the image go: the slot is free again, but a's claim stays ended.
    await releaseClaim(db, cb.claim.id, b);
    assert.equal(await annotate(db, ca!.claim.id, ds.images[0], a), null);
    assert.equal(
      await renewClaim(db, ca!.claim.id, a),
      null,
    );
    // a's next claim is a new one (the image is claimable again), and ends nothing twice.
    const again = await claim(db, ds.id, a);
    assert.equal(again?.state, "new");
    assert.equal(again?.image.id, ds.images[0]);
    assert.deepEqual(await endedRows(db, ca!.claim.id), ["expired"]);
    assert.deepEqual(await expiredEvents(db), [ca!.claim.id], "one event");
  },
);

withDb(
  "claim query: with k=2 an expired claim ends when a claim leaves no slot for it",
  async ({ db }) => {
    const ds = await newDataset(db, { k: 2, ttl: 30, priorities: [1] });
    const [u, a, c, d] = await newUsers(db, 4);
    const lease = (id: string) => getLease(db, { kind: "annotate", id, ...SEES_ALL });
    // One slot free for the holder to renew into: c's claim leaves a's claim be.
    const ca = await claim(db, ds.id, a);
    await setClaimExpiry(db, ca!.claim.id, -1000);
    const cc = await claim(db, ds.id, c);
    assert.equal(cc?.image.id, ds.images[0]);
    assert.equal((await lease(ca!.claim.id))?.active, true);
    assert.ok(await annotate(db, ca!.claim.id, ds.images[0], a), "renewable, so accepted");
    // Image 0 now has one annotation: a claim on it takes its last slot, and the next claim
    // after that one expires ends it.
    await setClaimExpiry(db, cc!.claim.id, -1000);
    assert.equal((await claim(db, ds.id, d))?.image.id, ds.images[0]);
    assert.equal((await lease(cc!.claim.id))?.end_reason, "expired");
    assert.equal(await annotate(db, cc!.claim.id, ds.images[0], c), null);
    assert.equal(await claim(db, ds.id, u), null, "image 0 is full");
  },
);

withDb(
  "claim query: with k=2 an expired lease stays listed through another holder's submit, and the claim that fills the image ends it",
  async ({ db }) => {
    const ds = await newDataset(db, { k: 2, ttl: 30, priorities: [1] });
    const [a, b, c] = await newUsers(db, 3);
    await claimExpiredWebhook(db);
    const ca = (await claim(db, ds.id, a))!;
    const cb = (await claim(db, ds.id, b))!;
    assert.equal(cb.image.id, ds.images[0]);
    await setClaimExpiry(db, ca.claim.id, -1000);
    // b's submit rewrites the image's leases: a's expired one stays, its claim being active.
    assert.ok(await annotate(db, cb.claim.id, ds.images[0], b));
    assert.deepEqual(await listedLeases(db, ds.images[0]), [ca.claim.id]);
    // c's claim takes the slot a could still have renewed into: a's claim ends here.
    const cc = (await claim(db, ds.id, c))!;
    assert.equal(cc.image.id, ds.images[0]);
    assert.deepEqual(await endedRows(db, ca.claim.id), ["expired"]);
    assert.deepEqual(await expiredEvents(db), [ca.claim.id]);
    assert.deepEqual(await listedLeases(db, ds.images[0]), [cc.claim.id]);
    assert.equal(await annotate(db, ca.claim.id, ds.images[0], a), null);
    assert.equal(await renewClaim(db, ca.claim.id, a), null);
  },
);

withDb(
  "claim query: a writer's own lease leaves the list with its claim: renewed, released, submitted",
  async ({ db }) => {
    const ds = await newDataset(db, { k: 2, ttl: 30, priorities: [1, 0] });
    const [a, b] = await newUsers(db, 2);
    const ca = (await claim(db, ds.id, a))!;
    await setClaimExpiry(db, ca.claim.id, -1000);
    // a's next claim renews its expired one in place ...
    const second = (await claim(db, ds.id, a))!;
    assert.equal(second.state, "held", "renewed: its slot was free");
    await releaseClaim(db, second.claim.id, a);
    assert.deepEqual(await listedLeases(db, ds.images[0]), []);
    const third = (await claim(db, ds.id, a))!;
    await setClaimExpiry(db, third.claim.id, -1000);
    await releaseClaim(db, third.claim.id, a);
    // ... a released one, expired or not, leaves with its release, and a submitted one too.
    assert.deepEqual(await listedLeases(db, third.image.id), []);
    const cb = (await claim(db, ds.id, b))!;
    assert.ok(await annotate(db, cb.claim.id, cb.image.id, b));
    assert.deepEqual(await listedLeases(db, cb.image.id), []);
  },
);

withDb(
  "claim query: a taken-over claim whose row its holder's statement holds is left to the holder, without a wait",
  async ({ db }) => {
    const { ds, a, b, ca } = await expiredClaim(db);
    await transaction(db, async (tx) => {
      // a's own statement (a renew, a submit) holds a's row at this instant.
      await rawMany(
        tx,
        "SELECT 1 FROM current_claims WHERE user_id = $1::bigint FOR NO KEY UPDATE",
        [a],
      );
      const taken = await Promise.race([
        claim(db, ds.id, b),
        delay(5_000).then(() => "waited" as const),
      ]);
      if (taken === "waited") throw new Error("the claim waited for a's row");
      assert.equal(taken?.image.id, ds.images[0]);
    });
    const lease = await getLease(db, { kind: "annotate", id: ca!.claim.id, ...SEES_ALL });
    assert.equal(lease?.active, true, "left active");
    assert.equal(lease?.live, false);
    // The holder finds it expired: renew refused, and the next claim ends it, once.
    assert.equal(
      await renewClaim(db, ca!.claim.id, a),
      null,
    );
    assert.deepEqual(await expiredEvents(db), [], "not ended yet");
    assert.equal((await claim(db, ds.id, a))?.image.id, ds.images[1]);
    assert.deepEqual(await endedRows(db, ca!.claim.id), ["expired"]);
    assert.deepEqual(await expiredEvents(db), [ca!.claim.id]);
  },
);

withDb("claim query: a batch of claims ends the expired claims it takes over", async ({ db }) => {
  const ds = await newDataset(db, { ttl: 30, priorities: [2, 1, 0] });
  const [a, b, c] = await newUsers(db, 3);
  const batch = (users: string[]) =>
    claimNextImages(db, {
      dataset_id: ds.id,
      user_ids: users,
      user_roles: annotators(users),
      after_claim_ids: null,
    });
  await claimExpiredWebhook(db);
  const ca = await claim(db, ds.id, a);
  await setClaimExpiry(db, ca!.claim.id, -1000);
  const [rb] = await batch([b]);
  assert.equal(rb?.state, "new");
  assert.equal(rb.image.id, ds.images[0]);
  assert.deepEqual(await endedRows(db, ca!.claim.id), ["expired"]);

  // A caller of the batch whose expired claim another caller's new claim takes over: left
  // 'single', its claim ended by the batch, and its own statement ends nothing twice.
  const cc = await claim(db, ds.id, c);
  assert.equal(cc?.image.id, ds.images[1]);
  await setClaimExpiry(db, cc!.claim.id, -1000);
  await releaseClaim(db, rb.claim.id, b);
  await releaseClaim(db, (await claim(db, ds.id, a))!.claim.id, a);
  // Images 0 and 1 are claimable; b wants one, c holds an expired claim on image 1.
  await rawMany(db, "UPDATE images SET priority = 5 WHERE id = $1::bigint", [ds.images[1]]);
  const [rb2, rc] = await batch([b, c]);
  assert.equal(rb2?.state, "new");
  assert.equal(rb2.image.id, ds.images[1], "b takes c's slot");
  assert.equal(rc, undefined, "c is left to its own statement");
  assert.deepEqual(await endedRows(db, cc!.claim.id), ["expired"]);
  const next = await claim(db, ds.id, c);
  assert.equal(next?.state, "new");
  assert.deepEqual(await endedRows(db, cc!.claim.id), ["expired"]);
  assert.deepEqual(await expiredEvents(db), [ca!.claim.id, cc!.claim.id]);
});

withDb("claim query: an expired claim is accepted while nobody took the slot", async ({ db }) => {
  const ds = await newDataset(db, { ttl: 30, priorities: [1, 0] });
  const [a, b] = await newUsers(db, 2);
  const ca = await claim(db, ds.id, a);
  await setClaimExpiry(db, ca!.claim.id, -1000);
  const ann = await annotate(db, ca!.claim.id, ds.images[0], a);
  assert.ok(ann);
  assert.equal(ann.source, "human");
  assert.equal(ann.author_id, a);
  assert.equal(ann.model, null);
  const done = await getLease(db, { kind: "annotate", id: ca!.claim.id, ...SEES_ALL });
  assert.equal(done?.end_reason, "completed");
  assert.equal(await status(db, ds.images[0]), "done");
  assert.equal(await annotate(db, ca!.claim.id, ds.images[0], a), null, "submitted once");

  // Renewing an expired claim: allowed while the slot is free, refused once taken.
  const c2 = await claim(db, ds.id, a);
  assert.equal(c2?.image.id, ds.images[1]);
  await setClaimExpiry(db, c2.claim.id, -1000);
  const renewed = await renewLease(db, {
    kind: "annotate",
    claim_id: c2.claim.id,
    user_id: a,
    caller_role: "annotator",
  });
  assert.equal(renewed?.live, true);
  assert.equal(await status(db, ds.images[1]), "in_progress", "the lease is back");
  await setClaimExpiry(db, c2.claim.id, -1000);
  assert.equal((await claim(db, ds.id, b))?.image.id, ds.images[1]);
  assert.equal(
    await renewLease(db, {
      kind: "annotate",
      claim_id: c2.claim.id,
      user_id: a,
      caller_role: "annotator",
    }),
    null,
  );
});

withDb(
  "claim query: an expired claim whose slot is still free comes back renewed ('held'), not replaced",
  async ({ db }) => {
    const ds = await newDataset(db, { ttl: 60, priorities: [9, 1] });
    const [a] = await newUsers(db, 1);
    const ca = await claim(db, ds.id, a);
    await setClaimExpiry(db, ca!.claim.id, -1000);
    assert.equal(await status(db, ds.images[0]), "pending");
    const again = await claim(db, ds.id, a);
    assert.equal(again?.state, "held", "the work in progress is kept");
    assert.equal(again.claim.id, ca!.claim.id);
    assert.equal(again.image.id, ds.images[0]);
    assert.equal(again.image.status, "in_progress");
    assert.ok(again.claim.expires_at.getTime() > Date.now() + 50_000, "renewed for the TTL");
    assert.equal(
      (await getLease(db, { kind: "annotate", id: ca!.claim.id, ...SEES_ALL }))?.live,
      true,
    );
    assert.equal(await status(db, ds.images[0]), "in_progress", "the lease is back");
    assert.ok(await annotate(db, ca!.claim.id, ds.images[0], a));
  },
);

withDb(
  "claim query: a live claim's submit is accepted after an admin filled the image",
  async ({ db }) => {
    const ds = await newDataset(db, { k: 1, priorities: [1] });
    const [admin] = await newUsers(db, 1, "admin");
    const [a] = await newUsers(db, 1);
    const ca = await claim(db, ds.id, a);
    assert.ok(await annotate(db, null, ds.images[0], admin), "the admin's correction");
    assert.equal(await status(db, ds.images[0]), "done");
    const made = await annotate(db, ca!.claim.id, ds.images[0], a);
    assert.ok(made, "the holder's work is not thrown away");
    assert.equal(
      (await getLease(db, { kind: "annotate", id: ca!.claim.id, ...SEES_ALL }))?.end_reason,
      "completed",
    );
    const [row] = await rawMany<{ n: number }>(
      db,
      "SELECT cardinality(annotators) AS n FROM images WHERE id = $1::bigint",
      [ds.images[0]],
    );
    assert.equal(row.n, 2);
  },
);

withDb("claim query: a claim is for its own user and image", async ({ db }) => {
  const ds = await newDataset(db, { priorities: [1, 0] });
  const [a, b] = await newUsers(db, 2);
  const ca = await claim(db, ds.id, a);
  assert.equal(await annotate(db, ca!.claim.id, ds.images[0], b), null, "b is not the holder");
  assert.equal(await annotate(db, ca!.claim.id, ds.images[1], a), null, "another image");
  assert.equal(await annotate(db, "999999", ds.images[0], a), null, "no such claim");
  assert.ok(await annotate(db, ca!.claim.id, ds.images[0], a));
});

withDb(
  "claim query: k=3: three different annotators per image, never one twice",
  async ({ db }) => {
    const ds = await newDataset(db, { k: 3, priorities: [5, 4, 3, 2] });
    const users = await newUsers(db, 4);
    // The first three claims all land on the top image: it has three slots.
    const first = [];
    for (const u of users.slice(0, 3)) first.push(await claim(db, ds.id, u));
    assert.deepEqual(first.map((r) => r!.image.id), Array(3).fill(ds.images[0]));
    assert.equal(first[2]!.image.status, "in_progress");
    assert.equal((await claim(db, ds.id, users[3]))?.image.id, ds.images[1]);
    for (const [i, r] of first.entries()) {
      assert.ok(await annotate(db, r!.claim.id, r!.image.id, users[i]));
    }
    // Drain with the four users taking turns until nobody can claim anything.
    for (let busy = true; busy;) {
      busy = false;
      for (const u of users) {
        const r = await claim(db, ds.id, u);
        if (!r) continue;
        busy = true;
        assert.ok(await annotate(db, r.claim.id, r.image.id, u), `${u} on ${r.image.id}`);
      }
    }
    const per = await rawMany<{ id: string; n: number; authors: number; done: boolean }>(
      db,
      `SELECT i.id::text, count(a.id)::integer AS n,
           count(DISTINCT a.author_id)::integer AS authors, i.done
         FROM images i LEFT JOIN annotations a ON a.image_id = i.id
         WHERE i.dataset_id = $1::bigint GROUP BY i.id ORDER BY i.id`,
      [ds.id],
    );
    assert.deepEqual(
      [...per],
      ds.images.map((id) => ({ id, n: 3, authors: 3, done: true })),
    );
    assert.equal(
      await claimNextImage(db, {
        dataset_id: ds.id,
        user_id: (await newUsers(db, 1))[0],
        caller_role: "annotator",
      }),
      null,
    );
  },
);

withDb("claim query: statuses: pending, in_progress, done", async ({ db }) => {
  const ds = await newDataset(db, { k: 2, ttl: 30, priorities: [2, 1] });
  const [a, b, c] = await newUsers(db, 3);
  const [img, other] = ds.images;
  const statuses = async () => {
    const list = await listImages(db, { dataset_id: ds.id, after_id: "0", limit: 10, ...SEES_ALL });
    const single = await status(db, img);
    const updated =
      (await updateImage(db, { id: img, priority: null, metadata: null, ...SEES_ALL }))!.status;
    assert.equal(list[0].status, single);
    assert.equal(updated, single);
    assert.equal(list[1].status, "pending");
    return single;
  };
  assert.equal(await statuses(), "pending");
  const ca = await claim(db, ds.id, a);
  assert.equal(ca?.image.status, "pending", "one of two slots is free");
  assert.equal(await statuses(), "pending");
  const cb = await claim(db, ds.id, b);
  assert.equal(cb?.image.id, img);
  assert.equal(cb.image.status, "in_progress");
  assert.equal(await statuses(), "in_progress");
  await setClaimExpiry(db, cb.claim.id, -1000);
  assert.equal(await statuses(), "pending", "an expired lease stops counting at once");
  assert.ok(await annotate(db, ca!.claim.id, img, a));
  assert.equal(await statuses(), "pending", "one annotation, one slot free");
  const cc = await claim(db, ds.id, c);
  assert.equal(cc?.image.id, img);
  assert.equal(await statuses(), "in_progress", "one annotation, one live lease");
  assert.ok(await annotate(db, cc.claim.id, img, c));
  assert.equal(await statuses(), "done");
  assert.equal(await annotate(db, cb.claim.id, img, b), null, "b's slot is gone");
  assert.equal((await claim(db, ds.id, b))?.image.id, other);
});

withDb("claim query: an admin correction needs no claim and counts once", async ({ db }) => {
  const ds = await newDataset(db, { k: 2, priorities: [1] });
  const [admin] = await newUsers(db, 1, "admin");
  const [a] = await newUsers(db, 1);
  assert.ok(await annotate(db, null, ds.images[0], admin));
  assert.ok(await annotate(db, null, ds.images[0], admin));
  assert.equal(await status(db, ds.images[0]), "pending");
  assert.equal(
    await claimNextImage(db, { dataset_id: ds.id, user_id: admin, caller_role: "annotator" }),
    null,
    "already annotated it",
  );
  const ca = await claim(db, ds.id, a);
  assert.ok(await annotate(db, ca!.claim.id, ds.images[0], a));
  assert.equal(await status(db, ds.images[0]), "done");
  assert.equal(await annotate(db, null, "999999", admin), null, "no such image");
});

withDb("claim query: changing annotations_per_image recomputes done", async ({ db }) => {
  const ds = await newDataset(db, { k: 1, priorities: [3, 2, 1] });
  const [a, b] = await newUsers(db, 2);
  for (let i = 0; i < 2; i++) {
    const r = await claim(db, ds.id, a);
    assert.ok(await annotate(db, r!.claim.id, r!.image.id, a));
  }
  const done = () =>
    rawMany<{ id: string }>(
      db,
      `SELECT id::text FROM images WHERE dataset_id = $1::bigint AND done ORDER BY id`,
      [ds.id],
    );
  assert.deepEqual((await done()).map((r) => r.id), ds.images.slice(0, 2));
  // As operations/datasets.ts does: the dataset row, then its images, in one transaction.
  const setK = (k: number) =>
    transaction(db as Db, async (tx) => {
      const d = await updateDataset(tx, { id: ds.id, annotations_per_image: k, ...SEES_ALL });
      await setAnnotationsPerImage(tx, {
        dataset_id: ds.id,
        annotations_per_image: k,
        ...SEES_ALL,
      });
      return d;
    });
  const updated = await setK(2);
  assert.equal(updated?.annotations_per_image, 2);
  assert.deepEqual((await done()).map((r) => r.id), []);
  assert.equal(await status(db, ds.images[0]), "pending");
  const rb = await claim(db, ds.id, b);
  assert.equal(rb?.image.id, ds.images[0], "back in the queue");
  assert.ok(await annotate(db, rb.claim.id, rb.image.id, b));
  assert.deepEqual((await done()).map((r) => r.id), [ds.images[0]]);
  await setK(1);
  assert.deepEqual((await done()).map((r) => r.id), ds.images.slice(0, 2));
  await updateDataset(db, { id: ds.id, description: "untouched k", ...SEES_ALL });
  assert.deepEqual((await done()).map((r) => r.id), ds.images.slice(0, 2));
});

/** Claims and submits as one server process sends them: through its Batchers (routes/). */
function batchedProcess(db: Db, datasetId: string) {
  const claims = new Batcher({
    key: () => datasetId,
    exclusive: (user: string) => [user],
    run: (_key, users: string[]) =>
      claimNextImages(db, {
        dataset_id: datasetId,
        user_ids: users,
        user_roles: annotators(users),
        after_claim_ids: null,
      }),
    maxSize: 64,
    maxInFlight: 1,
  });
  const submits = new Batcher({
    key: () => "",
    exclusive: (a: ClaimedHumanAnnotation) => [`user ${a.user_id}`, `image ${a.image_id}`],
    run: (_key, items: ClaimedHumanAnnotation[]) => createHumanAnnotations(db, items),
    maxSize: 64,
    maxInFlight: 1,
  });
  const alone = { claims: 0, submits: 0 };
  return {
    claims,
    submits,
    alone,
    claim: async (user: string) => {
      const batched = await claims.submit(user);
      if (batched) return batched;
      alone.claims++;
      return await claimNextImage(db, {
        dataset_id: datasetId,
        user_id: user,
        caller_role: "annotator",
      });
    },
    annotate: async (
      claimId: string,
      imageId: string,
      user: string,
    ): Promise<Annotation | null> => {
      const a = {
        claim_id: claimId,
        image_id: imageId,
        user_id: user,
        caller_role: "annotator" as const,
        labels: ["cat"],
        shapes: [{ type: "point" as const, label: "cat", x: 1, y: 2 }],
      };
      const batched = await submits.submit(a);
      if (batched) return batched;
      alone.submits++;
      return await createHumanAnnotation(db, a);
    },
  };
}

type Process = ReturnType<typeof batchedProcess>;

/** How the batches went: items per batch, and how many were left to their own statement. */
function batchReport(processes: Process[]) {
  const sum = (f: (p: Process) => number) => processes.reduce((n, p) => n + f(p), 0);
  return {
    claimsPerBatch: sum((p) => p.claims.stats.items) / sum((p) => p.claims.stats.batches),
    submitsPerBatch: sum((p) => p.submits.stats.items) / sum((p) => p.submits.stats.batches),
    claimsAlone: sum((p) => p.alone.claims),
    submitsAlone: sum((p) => p.alone.submits),
  };
}

/**
 * `workers` annotators, half on each of two pools (two server processes), loop claim → annotate
 * until nothing is left for them, each statement on its own or (`batched`) gathered as the
 * server gathers them. Returns the milliseconds it took.
 */
async function drain(
  pools: [Db, Db],
  datasetId: string,
  users: string[],
  batched?: Process[],
): Promise<number> {
  const started = performance.now();
  const processes = batched ?? pools.map((db) => ({
    claim: (user: string) =>
      claimNextImage(db, { dataset_id: datasetId, user_id: user, caller_role: "annotator" }),
    annotate: (claimId: string, imageId: string, user: string) =>
      annotate(db, claimId, imageId, user),
  }));
  const remaining = (db: Db, user: string) =>
    rawOne<{ n: number }>(
      db,
      `SELECT count(*)::integer AS n FROM images
       WHERE dataset_id = $1::bigint AND NOT done AND NOT ($2::bigint = ANY (annotators))`,
      [datasetId, user],
    );
  await Promise.all(users.map(async (user, i) => {
    const db = pools[i % 2];
    const process = processes[i % 2];
    for (;;) {
      const r = await process.claim(user);
      if (r === null) {
        // Nothing claimable now: finished, or the rest is leased or locked by others for the
        // moment (SKIP LOCKED), so look again shortly.
        if ((await remaining(db, user))!.n === 0) return;
        await delay(2);
        continue;
      }
      assert.equal(r.state, "new", "each worker completes its claim before the next");
      const a = await process.annotate(r.claim.id, r.image.id, user);
      assert.ok(a, `submit of claim ${r.claim.id} refused`);
    }
  }));
  return performance.now() - started;
}

async function auditDrain(db: Db, datasetId: string, k: number, images: number) {
  const perImage = await rawOne<{ images: number; exact: number; done: number }>(
    db,
    `SELECT count(*)::integer AS images,
       count(*) FILTER (WHERE n = $2::integer AND authors = $2::integer
         AND cardinality(annotators) = $2::integer)::integer AS exact,
       count(*) FILTER (WHERE done AND leases = '{}')::integer AS done
     FROM (
       SELECT i.id, i.done, i.leases, i.annotators, count(a.id) AS n,
         count(DISTINCT a.author_id) AS authors
       FROM images i
       LEFT JOIN annotations a ON a.image_id = i.id AND a.source = 'human'
       WHERE i.dataset_id = $1::bigint
       GROUP BY i.id
     ) per_image`,
    [datasetId, k],
  );
  assert.deepEqual(perImage, { images, exact: images, done: images });

  const claims = await rawOne<{ n: number; completed: number; per_image_ok: boolean }>(
    db,
    `SELECT count(*)::integer AS n,
       count(*) FILTER (WHERE end_reason = 'completed')::integer AS completed,
       (SELECT bool_and(c) FROM (
          SELECT count(*) = $2::integer AND count(DISTINCT user_id) = $2::integer AS c
          FROM claims WHERE dataset_id = $1::bigint GROUP BY image_id
        ) per) AS per_image_ok
     FROM claims WHERE dataset_id = $1::bigint`,
    [datasetId, k],
  );
  assert.deepEqual(claims, { n: images * k, completed: images * k, per_image_ok: true });

  // Never more than k claims on one image at once: count, for every claim, the claims on the
  // same image whose active periods overlap its own.
  const overlap = await rawOne<{ worst: number }>(
    db,
    `SELECT coalesce(max(n), 0)::integer AS worst FROM (
       SELECT count(*) AS n
       FROM claims a
       JOIN claims b ON b.image_id = a.image_id AND b.id <> a.id
         AND tstzrange(a.created_at, coalesce(a.ended_at, a.expires_at))
           && tstzrange(b.created_at, coalesce(b.ended_at, b.expires_at))
       WHERE a.dataset_id = $1::bigint
       GROUP BY a.id
     ) o`,
    [datasetId],
  );
  assert.ok(overlap!.worst <= k - 1, `a claim overlapped ${overlap!.worst} others on its image`);
}

// One connection, so the statement after the claim runs on the claim's own session.
withDb(
  "claim query: a claim commits asynchronously, and only the claim",
  { poolMax: 1 },
  async (h) => {
    const ds = await newDataset(h.db, { priorities: [1] });
    const [user] = await newUsers(h.db, 1);
    const show = async () =>
      (await rawMany<{ synchronous_commit: string }>(h.db, "SHOW synchronous_commit", []))[0]
        .synchronous_commit;
    // The test server runs with it off; the session's own setting stands for production's.
    await rawMany(h.db, "SET synchronous_commit = on", []);
    assert.equal(await show(), "on");
    const r = await claimNextImage(h.db, {
      dataset_id: ds.id,
      user_id: user,
      caller_role: "annotator",
    });
    assert.equal(r?.state, "new");
    assert.equal(await show(), "on", "the setting ended with the claim's transaction");
    // Inside a caller's transaction it would last to that transaction's end: claims never run in
    // one, and a submit in the same transaction would then be asynchronous too.
    await transaction(h.db, async (tx) => {
      await claimNextImage(tx, { dataset_id: ds.id, user_id: user, caller_role: "annotator" });
      assert.equal(
        (await rawMany<{ synchronous_commit: string }>(tx, "SHOW synchronous_commit", []))[0]
          .synchronous_commit,
        "off",
      );
    });
    assert.equal(await show(), "on");
  },
);

/**
 * A test with two pools on one fresh database (two server processes), 32 annotators and a
 * dataset of `images` images (priorities 0..2) with annotations_per_image `k`.
 */
function withTwoPools(
  name: string,
  opts: { k: number; images: number },
  fn: (
    t: { pools: [Db, Db]; db: Db; ds: { id: string; images: string[] }; users: string[] },
  ) => Promise<void>,
): void {
  withDb(name, { poolMax: 20 }, async (h) => {
    const second = connect(h.url, {
      max: 20,
      connectTimeoutSeconds: 10,
      statementTimeoutMs: 60_000,
      applicationName: "second-process",
    });
    try {
      // Its first query before any other, as a server process's start-up runs one (main.ts,
      // checkConnection). Without it a claim batch on this fresh pool once had its user ids sent
      // as "2,4,…" (malformed array literal) in a CI run: postgres.js 3.4.9 learns the array
      // types with a pool's first query (upstream: porsager/postgres#789).
      await second`SELECT 1`;
      const ds = await newDataset(h.db, {
        k: opts.k,
        priorities: Array.from({ length: opts.images }, (_, i) => i % 3),
      });
      const users = await newUsers(h.db, 32);
      await fn({ pools: [h.db, second], db: h.db, ds, users });
    } finally {
      await second.end({ timeout: 5 });
    }
  });
}

// The one drain of the statements alone (each claim and submit its own statement).
withTwoPools(
  "claim query: 32 annotators on two pools drain 600 images (k=2): each image annotated by two " +
    "different annotators, never held by more at once",
  { k: 2, images: 600 },
  async ({ pools, db, ds, users }) => {
    const ms = await drain(pools, ds.id, users);
    console.log(`    drained 600 images (k=2) with 32 annotators in ${Math.round(ms)} ms`);
    await auditDrain(db, ds.id, 2, 600);
  },
);

// The one drain through the batchers (claims and submits gathered as a server gathers them).
withTwoPools(
  "claim batches: 32 annotators on two batching pools drain 400 images (k=3): each image " +
    "annotated by three different annotators, claims and submits gathered",
  { k: 3, images: 400 },
  async ({ pools, db, ds, users }) => {
    const processes = pools.map((pool) => batchedProcess(pool, ds.id));
    const ms = await drain(pools, ds.id, users, processes);
    const report = batchReport(processes);
    console.log(
      `    drained 400 images (k=3, batched) in ${Math.round(ms)} ms`,
      JSON.stringify(report),
    );
    await auditDrain(db, ds.id, 3, 400);
    // The batches did the work: several items each, few left to their own statement (a claim
    // is, when the other process's batch holds the rows it would take, or when the batch's
    // callers have annotated every image it could lock).
    assert.ok(report.claimsPerBatch > 2 && report.submitsPerBatch > 2, JSON.stringify(report));
    assert.ok(report.claimsAlone < 200 && report.submitsAlone === 0, JSON.stringify(report));
  },
);

withDb("claim query: stays an index scan at 100,000 images", { poolMax: 5 }, async ({ db }) => {
  const CLAIM_STATEMENT = statement<ClaimNextImageParams>("claims/claim_next_image");
  const ds = await newDataset(db, { priorities: [] });
  await rawExec(
    db,
    `INSERT INTO images (dataset_id, uri, priority)
       SELECT $1::bigint, 's3://big/' || g || '.jpg', (g * 7919) % 100
       FROM generate_series(1, 100000) g`,
    [ds.id],
  );
  const users = await newUsers(db, 3);
  // Some history: leased and done images at the head of the queue.
  for (let i = 0; i < 20; i++) {
    const r = await claim(db, ds.id, users[0]);
    await annotate(db, r!.claim.id, r!.image.id, users[0]);
  }
  await claim(db, ds.id, users[1]);
  await rawExec(db, "ANALYZE images", []);

  const check = (plan: PlanNode, what: string) => {
    const nodes = planNodes(plan);
    // The sorts allowed are the predictions' (one image's annotations, by model name) and the
    // rework probe's (the caller's own images awaiting rework, found on images_rework_idx):
    // nothing may sort the queue.
    for (const sort of nodes.filter((n) => n["Node Type"] === "Sort")) {
      const below = planNodes(sort);
      const tables = [...new Set(below.map((n) => n["Relation Name"]).filter(Boolean))];
      const rework = below.some((n) => n["Index Name"] === "images_rework_idx");
      assert.ok(
        tables.length === 1 && (tables[0] === "annotations" || rework),
        `${what}: a Sort over ${tables}`,
      );
    }
    // The rework rule's probe: the GIN on rework_for, for the caller, never a scan of the
    // dataset's images awaiting others' rework.
    const probe = nodes.find((n) => n["Index Name"] === "images_rework_idx");
    assert.ok(probe, `${what}: no probe of images_rework_idx`);
    assert.equal(probe["Node Type"], "Bitmap Index Scan");
    assert.match(String(probe["Index Cond"]), /rework_for @>/);
    const queue = nodes.find((n) =>
      n["Index Name"] === "images_claim_queue_idx" && n["Relation Name"] === "images"
    );
    assert.ok(queue, `${what}: no scan on images_claim_queue_idx`);
    assert.equal(queue["Node Type"], "Index Scan");
    assert.ok(
      !nodes.some((n) => n["Relation Name"] === "images" && n["Node Type"] === "Seq Scan"),
      `${what}: a sequential scan on images`,
    );
  };

  const params = { dataset_id: ds.id, user_id: users[2], caller_role: "annotator" as const };
  await checkPlans(db, CLAIM_STATEMENT, params, check);

  const started = performance.now();
  const r = await claim(db, ds.id, users[2]);
  assert.equal(r?.state, "new");
  const ms = performance.now() - started;
  assert.ok(ms < 1000, `claim took ${ms} ms`);
});

withDb("review claim query: the review queue's index, in its order, at 100,000 images", {
  poolMax: 5,
}, async ({ db }) => {
  const REVIEW = statement<ClaimNextReviewParams>("reviews/claim_next_review");
  const ds = await newDataset(db, { priorities: [] });
  // Every image annotated and waiting for review, entered at scattered times.
  await rawExec(
    db,
    `INSERT INTO images (dataset_id, uri, priority, done, review, review_since)
       SELECT $1::bigint, 's3://big/' || g || '.jpg', (g * 7919) % 100, true, 'waiting',
         now() - make_interval(secs => (g::bigint * 104729) % 100000)
       FROM generate_series(1, 100000) g`,
    [ds.id],
  );
  const [reviewer] = await newUsers(db, 1, "reviewer");
  await rawExec(db, "ANALYZE images", []);
  const params = { dataset_id: ds.id, user_id: reviewer, caller_role: "reviewer" as const };

  const check = (plan: PlanNode, what: string) => {
    const nodes = planNodes(plan);
    const queue = nodes.find((n) => n["Index Name"] === "images_review_queue_idx");
    assert.ok(queue, `${what}: no scan on images_review_queue_idx`);
    assert.equal(queue["Node Type"], "Index Scan");
    for (const sort of nodes.filter((n) => n["Node Type"] === "Sort")) {
      const tables = new Set(planNodes(sort).map((n) => n["Relation Name"]).filter(Boolean));
      assert.ok(!tables.has("images"), `${what}: a Sort over images`);
    }
    assert.ok(
      !nodes.some((n) => n["Relation Name"] === "images" && n["Node Type"] === "Seq Scan"),
      `${what}: a sequential scan on images`,
    );
  };
  await checkPlans(db, REVIEW, params, check);

  // And the order it reads: the highest priority, then the longest waiting.
  const head = await rawOne<{ id: string }>(
    db,
    `SELECT id::text FROM images WHERE dataset_id = $1::bigint AND review = 'waiting'
     ORDER BY priority DESC, review_since, id LIMIT 1`,
    [ds.id],
  );
  const got = await claimNextReview(db, params);
  assert.equal(got?.state, "new");
  assert.equal(got?.image.id, head?.id);
});

/**
 * 5,000 other annotators holding a claim in each of 4 new datasets: current_claims at 20,000 rows,
 * as a server with many annotators and datasets has it. Returns the datasets.
 */
async function crowdedClaims(db: Handle): Promise<{ id: string; images: string[] }[]> {
  const datasets = [];
  for (let i = 0; i < 4; i++) datasets.push(await newDataset(db, { priorities: [0, 0] }));
  const others = await newUsers(db, 5000);
  await rawExec(
    db,
    `INSERT INTO current_claims (user_id, dataset_id, claim_id, image_id, claimed_at, expires_at,
       active, kind)
     SELECT u, d, nextval('claim_ids'), $3::bigint, now(), now() + interval '15 minutes', true,
       'annotate'
     FROM unnest($1::bigint[]) AS u, unnest($2::bigint[]) AS d`,
    [others, datasets.map((d) => d.id), datasets[0].images[0]],
  );
  return datasets;
}

withDb("submit batch query: finds the callers' claims by key among 20,000", {
  poolMax: 5,
}, async ({ db }) => {
  // current_claims grows with annotators times datasets; read whole it would cost each batch
  // milliseconds.
  await crowdedClaims(db);
  const ds = await newDataset(db, { priorities: Array(8).fill(0) });
  const submitters = await newUsers(db, 8);
  const submits: ClaimedHumanAnnotation[] = [];
  for (const user of submitters) {
    const r = await claim(db, ds.id, user);
    submits.push({
      caller_role: "annotator",
      claim_id: r!.claim.id,
      image_id: r!.image.id,
      user_id: user,
      labels: ["cat"],
      shapes: [{ type: "point", label: "cat", x: 1, y: 2 }],
    });
  }
  await rawExec(db, "ANALYZE current_claims");

  const check = (plan: PlanNode, what: string) =>
    assertReadsThrough(plan, "current_claims", "current_claims_pkey", what);
  const SUBMIT_BATCH = statement<CreateHumanAnnotationsParams>(
    "annotations/create_human_annotations",
  );
  const params = {
    submits: submits.map((a) => ({
      claim_id: a.claim_id!,
      image_id: a.image_id,
      user_id: a.user_id,
      role: a.caller_role,
      labels: a.labels,
      shapes: a.shapes,
      used: ["cat"],
      max_x: 1,
      max_y: 2,
    })),
  };
  await checkPlans(db, SUBMIT_BATCH, params, check);

  const made = await createHumanAnnotations(db, submits);
  assert.equal(made.filter(Boolean).length, 8);
});

withDb("taken_over_claims: finds the claim it ends by key among 20,000", {
  poolMax: 5,
}, async ({ db }) => {
  // The function runs in the claim statements for an image with an expired lease; read whole,
  // current_claims would cost that claim (and the batch it is in) hundreds of pages.
  const ds = (await crowdedClaims(db))[1];
  const [holder, taker] = await newUsers(db, 2);
  const held = await claim(db, ds.id, holder);
  await setClaimExpiry(db, held!.claim.id, -1000);
  await rawExec(db, "ANALYZE current_claims");
  const [{ pages }] = await rawMany<{ pages: number }>(
    db,
    "SELECT relpages AS pages FROM pg_class WHERE relname = 'current_claims'",
    [],
  );
  assert.ok(pages > 100, `current_claims is ${pages} pages`);

  const call = `FROM taken_over_claims($1::bigint, $2::bigint,
      ROW(nextval('claim_ids'), $2::bigint, now() + interval '15 minutes')::lease, '{}'::bigint[],
      (SELECT leases FROM images WHERE id = $3::bigint), '{}'::lease[], 1::smallint)`;
  const args = [ds.id, taker, held!.image.id];
  await transaction(db, async (tx) => {
    // Once to plan it (the catalog reads of a first call are not what a claim pays).
    await rawMany(tx, `SELECT claim_id ${call}`, args);
    const [explained] = await rawMany<{ "QUERY PLAN": PlanNode[] }>(
      tx,
      `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT claim_id::text ${call}`,
      args,
    );
    const scan = planNodes(explained["QUERY PLAN"][0].Plan as PlanNode)
      .find((n) => n["Node Type"] === "Function Scan")!;
    const read = Number(scan["Shared Hit Blocks"]) + Number(scan["Shared Read Blocks"]);
    assert.equal(scan["Actual Rows"], 1);
    assert.ok(read < 20, `taken_over_claims read ${read} pages`);
  });
  const [found] = await rawMany<{ claim_id: string }>(db, `SELECT claim_id::text ${call}`, args);
  assert.equal(found.claim_id, held!.claim.id);
});
