/**
 * The claim loop over HTTP: claimNextImage, renewClaim, releaseClaim and the human submit, with
 * every rejection, and 32 annotators draining a dataset through two app instances (two pools) on
 * one database, in priority order. The query-level rules are in tests/claims_sql_test.ts.
 */
import assert from "node:assert/strict";
import { createApp } from "../lib/http/app.ts";
import { connect, type Db } from "../lib/db/pool.ts";
import { silentLogger } from "../lib/runtime/log.ts";
import {
  assertError,
  type Res,
  setClaimExpiry,
  type TestApp,
  testConfig,
  type TestUser,
  withApp,
} from "./harness.ts";

let seq = 0;

interface Claims {
  h: TestApp;
  ann1: TestUser;
  ann2: TestUser;
  ann3: TestUser;
  /** A dataset with one image per priority (registered in that order); returns the image ids. */
  dataset(
    priorities: number[],
    opts?: { k?: number; size?: boolean },
  ): Promise<{ id: string; images: string[] }>;
  // deno-lint-ignore no-explicit-any
  claim(u: TestUser, datasetId: string): Promise<Res<any>>;
  // deno-lint-ignore no-explicit-any
  submit(u: TestUser, imageId: string, claimId: string, body?: object): Promise<Res<any>>;
  /** As if the claim's TTL had run out. */
  expire(claimId: string): Promise<number>;
}

/** A test on a fresh app with three annotators. */
function withClaims(name: string, fn: (c: Claims) => Promise<void>): void {
  withApp(name, async (h) => {
    const [ann1, ann2, ann3] = [
      await h.user("annotator"),
      await h.user("annotator"),
      await h.user("annotator"),
    ];

    async function dataset(
      priorities: number[],
      opts: { k?: number; size?: boolean } = {},
    ): Promise<{ id: string; images: string[] }> {
      const ds = await h.req("POST", "/api/v1/datasets", {
        name: `claims-http-${++seq}`,
        access: "open",
        labels: ["cat", "dog"],
        annotations_per_image: opts.k ?? 1,
      });
      assert.equal(ds.status, 201);
      const reg = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
        images: priorities.map((priority, i) => ({
          uri: `s3://b/${seq}/${i}.jpg`,
          external_id: `img-${i}`,
          priority,
          ...(opts.size === false ? {} : { width: 640, height: 480 }),
        })),
      });
      assert.equal(reg.status, 200);
      return { id: ds.body.id, images: reg.body.images.map((i: { id: string }) => i.id) };
    }

    const claim = (u: TestUser, datasetId: string) =>
      u.req("POST", `/api/v1/datasets/${datasetId}/claims`);
    const submit = (
      u: TestUser,
      imageId: string,
      claimId: string,
      body: object = { empty: true },
    ) => u.req("POST", `/api/v1/images/${imageId}/annotations`, { claim_id: claimId, ...body });

    const expire = (claimId: string) => setClaimExpiry(h.db, claimId, -1000);
    await fn({ h, ann1, ann2, ann3, dataset, claim, submit, expire });
  });
}

withClaims(
  "claims: a claim returns the claim, the image and its latest predictions",
  async ({ h, ann1, dataset, claim }) => {
    const ds = await dataset([1]);
    const machine = await h.user("machine");
    for (const version of ["1", "2"]) {
      const p = await machine.req("POST", `/api/v1/images/${ds.images[0]}/annotations`, {
        model: { name: "det", version },
        confidence: 0.5,
        labels: ["cat"],
      });
      assert.equal(p.status, 201);
    }
    const res = await claim(ann1, ds.id);
    assert.equal(res.status, 201);
    const { claim: c, image, predictions } = res.body;
    assert.deepEqual(Object.keys(c).sort(), [
      "dataset_id",
      "expires_at",
      "id",
      "image_id",
      "user_id",
    ]);
    assert.equal(c.image_id, ds.images[0]);
    assert.equal(c.dataset_id, ds.id);
    assert.equal(c.user_id, ann1.id);
    const ttl = (Date.parse(c.expires_at) - Date.now()) / 1000;
    assert.ok(ttl > 890 && ttl <= 900, `expires in ${ttl} s, the default TTL is 900`);
    assert.equal(image.id, ds.images[0]);
    assert.equal(image.status, "in_progress");
    assert.equal(predictions.length, 1, "the latest per model");
    assert.equal(predictions[0].model.version, "2");
    assert.equal(predictions[0].source, "machine");
  },
);

withClaims(
  "claims: claiming again returns the same claim with 200",
  async ({ ann1, ann2, dataset, claim }) => {
    const ds = await dataset([1, 2]);
    const first = await claim(ann1, ds.id);
    const again = await Promise.all([claim(ann1, ds.id), claim(ann1, ds.id)]);
    for (const res of again) {
      assert.equal(res.status, 200);
      assert.deepEqual(res.body.claim, first.body.claim);
    }
    const other = await claim(ann2, ds.id);
    assert.notEqual(other.body.claim.image_id, first.body.claim.image_id);
  },
);

withClaims(
  "claims: highest priority first, then oldest; 204 when nothing is left",
  async ({ h, dataset, claim }) => {
    const ds = await dataset([1, 5, 3, 5, -2]);
    const order: string[] = [];
    for (let i = 0; i < 5; i++) {
      const u = await h.user("annotator");
      const res = await claim(u, ds.id);
      assert.equal(res.status, 201);
      order.push(res.body.image.id);
    }
    const [p1, p5a, p3, p5b, pm2] = ds.images;
    assert.deepEqual(order, [p5a, p5b, p3, p1, pm2]);
    const late = await claim(await h.user("annotator"), ds.id);
    assert.equal(late.status, 204);
    assert.equal(late.body, "");
  },
);

withClaims(
  "claims: a priority change reorders the queue at once",
  async ({ h, ann1, dataset, claim }) => {
    const ds = await dataset([1, 2, 3]);
    const put = await h.req("PUT", `/api/v1/datasets/${ds.id}/priorities`, {
      priorities: [{ external_id: "img-0", priority: 100 }],
    });
    assert.equal(put.status, 200);
    assert.equal((await claim(ann1, ds.id)).body.image.id, ds.images[0]);
  },
);

withClaims(
  "claims: claimable images locked by other work: the claim waits them out, never a false 204",
  async ({ h, ann3, dataset, claim, submit }) => {
    const ds = await dataset([2, 1]);
    // Another statement holds every image row (as a setPriorities batch would) for 40 ms.
    const locker = await h.db.reserve();
    try {
      await locker.unsafe("BEGIN");
      await locker.unsafe("SELECT id FROM images WHERE dataset_id = $1::bigint FOR UPDATE", [
        ds.id,
      ]);
      const pending = claim(ann3, ds.id);
      await new Promise((r) => setTimeout(r, 40));
      await locker.unsafe("COMMIT");
      const res = await pending;
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.equal(res.body.image.id, ds.images[0]);
      // Locked for longer than the retries last: 503 busy, not "nothing left".
      await submit(ann3, ds.images[0], res.body.claim.id, { labels: ["cat"] });
      await locker.unsafe("BEGIN");
      await locker.unsafe("SELECT id FROM images WHERE dataset_id = $1::bigint FOR UPDATE", [
        ds.id,
      ]);
      const busy = await claim(ann3, ds.id);
      await locker.unsafe("COMMIT");
      assert.equal(busy.status, 503);
      assert.equal(busy.body.error.code, "busy");
      assert.equal((await claim(ann3, ds.id)).status, 201, "served once the lock is gone");
    } finally {
      locker.release();
    }
  },
);

withClaims(
  "claims: unknown dataset 404, bad id 400, machines may not claim",
  async ({ h, ann1, dataset, claim }) => {
    assertError(await claim(ann1, "999999999"), 404, "not_found");
    assertError(await claim(ann1, "abc"), 400, "validation_failed");
    const ds = await dataset([1]);
    assertError(await claim(await h.user("machine"), ds.id), 403, "forbidden");
  },
);

withClaims(
  "claims: renew extends the lease; holder only",
  async ({ h, ann1, ann2, dataset, claim, expire }) => {
    const ds = await dataset([1]);
    const c = (await claim(ann1, ds.id)).body.claim;
    await expire(c.id);
    const renewed = await ann1.req("POST", `/api/v1/claims/${c.id}/renew`);
    assert.equal(renewed.status, 200, "an expired claim renews while nobody took its slot");
    assert.equal(renewed.body.id, c.id);
    assert.ok(Date.parse(renewed.body.expires_at) > Date.now() + 890_000);
    assertError(await ann2.req("POST", `/api/v1/claims/${c.id}/renew`), 403, "claim_not_yours");
    assertError(await h.req("POST", `/api/v1/claims/${c.id}/renew`), 403, "claim_not_yours");
    assertError(await ann1.req("POST", "/api/v1/claims/999999999/renew"), 404, "not_found");
    assertError(await ann1.req("POST", "/api/v1/claims/0/renew"), 400, "validation_failed");
    // The image stays held: nobody else gets it.
    assert.equal((await claim(ann2, ds.id)).status, 204);
  },
);

withClaims(
  "claims: release frees the image at once; holder or admin",
  async ({ h, ann1, ann2, dataset, claim, submit }) => {
    const ds = await dataset([1]);
    const c = (await claim(ann1, ds.id)).body.claim;
    assert.equal((await claim(ann2, ds.id)).status, 204);
    assertError(await ann2.req("DELETE", `/api/v1/claims/${c.id}`), 403, "claim_not_yours");
    assert.equal((await ann1.req("DELETE", `/api/v1/claims/${c.id}`)).status, 204);
    assertError(await ann1.req("DELETE", `/api/v1/claims/${c.id}`), 409, "claim_released");
    assertError(await ann1.req("POST", `/api/v1/claims/${c.id}/renew`), 409, "claim_released");
    assertError(await submit(ann1, c.image_id, c.id), 409, "claim_released");
    const next = await claim(ann2, ds.id);
    assert.equal(next.status, 201);
    assert.equal(next.body.image.id, c.image_id);
    // An admin releases anyone's claim.
    assert.equal((await h.req("DELETE", `/api/v1/claims/${next.body.claim.id}`)).status, 204);
    assertError(await h.req("DELETE", "/api/v1/claims/999999999"), 404, "not_found");
    // The releaser may claim it again: releasing is not annotating.
    assert.equal((await claim(ann1, ds.id)).body.image.id, c.image_id);
  },
);

withClaims(
  "claims: an expired lease goes to the next caller; the late submit is 409",
  async ({ ann1, ann2, dataset, claim, submit, expire }) => {
    const ds = await dataset([1]);
    const c = (await claim(ann1, ds.id)).body.claim;
    await expire(c.id);
    const taken = await claim(ann2, ds.id);
    assert.equal(taken.status, 201, "the expired lease stops counting at once");
    assert.equal(taken.body.image.id, c.image_id);
    assertError(await submit(ann1, c.image_id, c.id), 409, "claim_expired");
    assertError(await ann1.req("POST", `/api/v1/claims/${c.id}/renew`), 409, "claim_expired");
    assert.equal((await submit(ann2, c.image_id, taken.body.claim.id)).status, 201);
    // ann1 claims again: the expired claim is ended and nothing is left.
    assert.equal((await claim(ann1, ds.id)).status, 204);
    assertError(await submit(ann1, c.image_id, c.id), 409, "claim_expired");
  },
);

withClaims(
  "claims: an expired claim is still accepted while nobody took the slot",
  async ({ ann1, dataset, claim, submit, expire }) => {
    const ds = await dataset([1]);
    const c = (await claim(ann1, ds.id)).body.claim;
    await expire(c.id);
    const res = await submit(ann1, c.image_id, c.id, { labels: ["cat"] });
    assert.equal(res.status, 201);
    assert.equal(res.body.source, "human");
  },
);

withClaims(
  "claims: submitting completes the claim; the next claim is a new image",
  async ({ h, ann1, dataset, claim, submit }) => {
    const ds = await dataset([2, 1]);
    const c = (await claim(ann1, ds.id)).body.claim;
    const res = await submit(ann1, c.image_id, c.id, { labels: ["dog"] });
    assert.equal(res.status, 201);
    assertError(await submit(ann1, c.image_id, c.id), 409, "claim_completed");
    assertError(await ann1.req("DELETE", `/api/v1/claims/${c.id}`), 409, "claim_completed");
    const next = await claim(ann1, ds.id);
    assert.equal(next.status, 201);
    assert.equal(next.body.image.id, ds.images[1]);
    const image = await h.req("GET", `/api/v1/images/${c.image_id}`);
    assert.equal(image.body.status, "done");
  },
);

withClaims(
  "claims: k=2: two different annotators per image, never the same one twice",
  async ({ h, ann1, ann2, ann3, dataset, claim, submit }) => {
    const ds = await dataset([3, 2, 1], { k: 2 });
    const a = (await claim(ann1, ds.id)).body.claim;
    const b = (await claim(ann2, ds.id)).body.claim;
    assert.equal(a.image_id, ds.images[0]);
    assert.equal(b.image_id, ds.images[0], "a second annotator shares the image");
    assert.equal((await claim(ann3, ds.id)).body.claim.image_id, ds.images[1], "slots full");
    assert.equal((await submit(ann1, a.image_id, a.id)).status, 201);
    const again = await claim(ann1, ds.id);
    assert.equal(again.body.claim.image_id, ds.images[1], "never the same image twice");
    assert.equal((await submit(ann2, b.image_id, b.id)).status, 201);
    const stats = await h.req("GET", `/api/v1/datasets/${ds.id}/stats`);
    assert.equal(stats.body.done, 1);
    assert.equal(stats.body.human_annotations, 2);
    assert.equal(stats.body.active_claims, 2);
  },
);

withClaims(
  "claims: a claim is for its own user and image",
  async ({ h, ann1, ann2, dataset, claim, submit }) => {
    const ds = await dataset([2, 1]);
    const a = (await claim(ann1, ds.id)).body.claim;
    const b = (await claim(ann2, ds.id)).body.claim;
    assertError(await submit(ann2, a.image_id, a.id), 403, "claim_not_yours");
    assertError(await submit(ann1, b.image_id, a.id), 409, "claim_mismatch");
    assertError(await submit(ann1, a.image_id, "999999999"), 404, "not_found");
    assertError(await submit(ann1, "999999999", a.id), 404, "not_found");
    // Nothing was written by the refusals.
    const stats = await h.req("GET", `/api/v1/datasets/${ds.id}/stats`);
    assert.equal(stats.body.human_annotations, 0);
    assert.equal(stats.body.active_claims, 2);
  },
);

// The one drain over HTTP. Priority order under concurrency: concurrency may reorder claims only
// as far as claims in flight can. When a claim is answered, every image of higher priority that
// nobody has been handed yet must be one that another annotator's request, still unanswered, has
// taken (locked or leased). Each annotator has one request at a time, so at most 31 such images
// can exist (FOR UPDATE SKIP LOCKED skips only rows locked by a concurrent claim). A claim that
// skipped an image nobody was taking would break that bound. Only images nobody has been handed
// count: one handed out may have been passed over for its second slot while its first claim still
// held the row, and that claim's answer can arrive before the one that passed it over.
const ANNOTATORS = 32;
const IMAGES = 320;
const K = 2;

withApp(
  "claims: 32 annotators on two app instances drain 320 images (k=2) over HTTP: each image " +
    "twice, by two annotators, in priority order, never held by more at once",
  { poolMax: 8 },
  async (h) => {
    // A second app on its own pool: two servers on one database. The first gathers claims and
    // submits into batches (the default), the second sends each alone (DB_BATCH_MAX=0), so both
    // kinds of statement meet on the same rows (two batching pools: tests/claims_sql_test.ts).
    const db2: Db = connect(h.url, {
      max: 8,
      connectTimeoutSeconds: 10,
      statementTimeoutMs: 60_000,
    });
    const app2 = createApp({
      db: db2,
      config: testConfig({ DB_BATCH_MAX: "0" }),
      log: silentLogger,
    });
    try {
      const annotators = await Promise.all(
        Array.from({ length: ANNOTATORS }, () => h.user("annotator")),
      );
      const ds = await h.req("POST", "/api/v1/datasets", {
        name: "drain",
        access: "open",
        labels: ["cat"],
        annotations_per_image: K,
      });
      assert.equal(ds.status, 201);
      // Distinct priorities, registered in shuffled order so that age does not decide.
      const priorities = Array.from({ length: IMAGES }, (_, i) => i);
      for (let i = priorities.length - 1; i > 0; i--) {
        const j = Math.floor(Math.random() * (i + 1));
        [priorities[i], priorities[j]] = [priorities[j], priorities[i]];
      }
      const reg = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
        images: priorities.map((priority, i) => ({ uri: `s3://b/drain/${i}.jpg`, priority })),
      });
      assert.equal(reg.status, 200);

      /** Claimed priorities in the order the claims were answered. */
      const answered: number[] = [];
      /** Who was handed each image (by priority: they are distinct). */
      const handed = new Map<number, string[]>();
      const statuses = new Map<number, number>();
      const breaches: string[] = [];
      let worst = 0;
      await Promise.all(annotators.map(async (u, n) => {
        const app = n % 2 ? app2 : h.app;
        const call = async (method: string, path: string, body?: unknown) => {
          const res = await app.request(path, {
            method,
            headers: { authorization: `Bearer ${u.token}`, "content-type": "application/json" },
            body: body === undefined ? undefined : JSON.stringify(body),
          });
          return { status: res.status, body: res.status === 204 ? null : await res.json() };
        };
        for (;;) {
          const c = await call("POST", `/api/v1/datasets/${ds.body.id}/claims`);
          statuses.set(c.status, (statuses.get(c.status) ?? 0) + 1);
          if (c.status === 204) return;
          assert.equal(c.status, 201, JSON.stringify(c.body));
          const p = c.body.image.priority as number;
          // At this answer: the higher priorities nobody was handed yet, which only claims still
          // in flight (one per other annotator) can account for.
          const higher = priorities.filter((q) => q > p && !handed.has(q)).length;
          worst = Math.max(worst, higher);
          if (higher > ANNOTATORS - 1) {
            breaches.push(`#${answered.length}: priority ${p} while ${higher} higher were untaken`);
          }
          answered.push(p);
          handed.set(p, [...(handed.get(p) ?? []), u.id]);
          const s = await call("POST", `/api/v1/images/${c.body.claim.image_id}/annotations`, {
            claim_id: c.body.claim.id,
            shapes: [{ type: "bbox", label: "cat", x: 1, y: 1, width: 2, height: 2 }],
          });
          assert.equal(s.status, 201, JSON.stringify(s.body));
        }
      }));

      assert.deepEqual(
        breaches.slice(0, 10),
        [],
        `${breaches.length} claims passed over more higher-priority images than claims in flight`,
      );
      assert.ok(worst <= ANNOTATORS - 1, `worst: ${worst}`);
      // Every image handed out exactly K times, to K different annotators; 204 only at the end.
      assert.equal(
        answered.length,
        IMAGES * K,
        `${answered.length} claims for ${IMAGES} images; statuses ${JSON.stringify([...statuses])}`,
      );
      assert.equal(handed.size, IMAGES, "every image was handed out");
      for (const [image, users] of handed) {
        assert.equal(users.length, K, `image ${image} was handed out ${users.length} times`);
        assert.equal(new Set(users).size, K, `image ${image} went to one annotator twice`);
      }
      assert.deepEqual([...statuses.keys()].sort(), [201, 204]);
      // From the durable claims table: at the start of every claim, at most K claims on its
      // image were live (the most claims live at once is reached at some claim's start).
      const crowded = await h.db.unsafe(
        `SELECT b.id FROM claims b
         JOIN claims a ON a.image_id = b.image_id
           AND tstzrange(a.created_at, a.ended_at) @> b.created_at
         WHERE b.dataset_id = $1::bigint
         GROUP BY b.id HAVING count(*) > $2::integer`,
        [ds.body.id, K],
      );
      assert.equal(crowded.length, 0, "an image was held by more than K annotators at once");
      const stats = await h.req("GET", `/api/v1/datasets/${ds.body.id}/stats`);
      assert.equal(stats.body.done, IMAGES);
      assert.equal(stats.body.human_annotations, IMAGES * K);
      assert.equal(stats.body.active_claims, 0);
    } finally {
      await db2.end({ timeout: 5 });
    }
  },
);
