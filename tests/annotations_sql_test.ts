/**
 * Annotations at the query level: the changes feed (never missing a row, even one committed
 * late), bulk predictions, latest predictions, stats and the streamed export.
 */
import assert from "node:assert/strict";
import { type Db, type Handle } from "../lib/db/pool.ts";
import { transaction } from "../lib/db/query.ts";
import {
  type Annotation,
  ANNOTATION_STATUSES,
  type AnnotationSource,
  createHumanAnnotation,
  createMachineAnnotation,
  createPredictions,
  decodeFeedCursor,
  encodeFeedCursor,
  exportAnnotations,
  type ExportedImage,
  type FeedCursor,
  listDatasetAnnotations,
  listImageAnnotations,
  type NewPrediction,
} from "../sql/annotations/queries.ts";
import { claimNextImage } from "../sql/claims/queries.ts";
import { createDataset, getDatasetStats } from "../sql/datasets/queries.ts";
import { imageBatch, registerImages } from "../sql/images/queries.ts";
import { annotators, rawMany, SEES_ALL, setClaimExpiry, withDb } from "./harness.ts";

let seq = 0;

async function newDataset(
  db: Handle,
  n: number,
  opts: { k?: number; ttl?: number; externalIds?: boolean } = {},
): Promise<{ id: string; images: string[] }> {
  const ds = await createDataset(db, {
    name: `annotations-${++seq}`,
    description: null,
    labels: ["cat", "dog"],
    annotations_per_image: opts.k ?? 1,
    claim_ttl_seconds: opts.ttl ?? 900,
    access: "open",
  });
  const images: string[] = [];
  for (let i = 0; i < n; i += 10_000) {
    const rows = await registerImages(
      db,
      imageBatch(
        ds!.id,
        Array.from({ length: Math.min(10_000, n - i) }, (_, j) => ({
          uri: `s3://bucket/${seq}/${i + j}.jpg`,
          external_id: opts.externalIds ? `ext-${i + j}` : null,
        })),
        SEES_ALL,
      ),
    );
    images.push(...rows.map((r) => r.id!));
  }
  return { id: ds!.id, images };
}

async function newUser(db: Handle, role: string): Promise<string> {
  const rows = await rawMany<{ id: string }>(
    db,
    "INSERT INTO users (name, role) VALUES ($1::text, $2::text) RETURNING id::text",
    [`${role}-${++seq}`, role],
  );
  return rows[0].id;
}

function predict(db: Handle, imageId: string, author: string, model = "detector", version = "1") {
  return createMachineAnnotation(db, {
    caller_role: "machine",
    image_id: imageId,
    author_id: author,
    model: { name: model, version },
    confidence: 0.5,
    labels: ["dog"],
    shapes: [{ type: "bbox", label: "dog", x: 1, y: 2, width: 3, height: 4 }],
  });
}

/** Claims the next image for `user` and annotates it. */
async function claimAndAnnotate(db: Handle, datasetId: string, user: string) {
  const r = await claimNextImage(db, {
    dataset_id: datasetId,
    user_id: user,
    caller_role: "annotator",
  });
  assert.ok(r && r.state !== "conflict");
  const a = await createHumanAnnotation(db, {
    caller_role: "annotator",
    claim_id: r.claim.id,
    image_id: r.image.id,
    user_id: user,
    labels: ["cat"],
    shapes: [{ type: "polygon", label: "cat", points: [[0, 0], [1, 0], [1, 1]] }],
  });
  assert.ok(a);
  return a;
}

function delay(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

/** A polling client of the changes feed: remembers its cursor and everything it received. */
class FeedClient {
  cursor: FeedCursor | null = null;
  received: Annotation[] = [];

  constructor(
    private db: Db,
    private datasetId: string,
    private source: AnnotationSource | null = null,
    private limit = 3,
  ) {}

  /** Polls until a page comes back empty. */
  async pollToEnd(): Promise<void> {
    for (;;) {
      const page = (await listDatasetAnnotations(this.db, this.datasetId, {
        source: this.source,
        after: this.cursor,
        limit: this.limit,
      }, SEES_ALL))!;
      assert.ok(page.items.length <= this.limit);
      this.received.push(...page.items);
      this.cursor = decodeFeedCursor(page.next_cursor);
      if (page.items.length === 0) return;
    }
  }

  /** Polls until every id in `ids` has arrived (other sessions on the server may hold rows back
   * for a moment: the feed waits for every older transaction to finish). */
  async pollUntil(ids: string[], timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await this.pollToEnd();
      const have = new Set(this.received.map((a) => a.id));
      if (ids.every((id) => have.has(id))) return;
      if (Date.now() > deadline) throw new Error(`feed never delivered ${ids}`);
      await delay(20);
    }
  }

  ids(): string[] {
    return this.received.map((a) => a.id);
  }
}

// The changes feed.

Deno.test("feed query: cursors round-trip and reject garbage", () => {
  // The largest of the form: 19 digits of txid, 18 of id.
  const c = { txid: "9".repeat(19), id: "9".repeat(18) };
  assert.deepEqual(decodeFeedCursor(encodeFeedCursor(c)), c);
  assert.deepEqual(decodeFeedCursor("007.010"), { txid: "7", id: "10" });
  for (
    const bad of [
      "",
      "1",
      "1.",
      ".1",
      "1.2.3",
      "-1.2",
      "1.-2",
      "a.b",
      " 1.2",
      "1.2 ",
      "18446744073709551615.1",
      "1.9223372036854775807",
      "١.٢",
      "1".repeat(30) + ".1",
    ]
  ) {
    assert.equal(decodeFeedCursor(bad), null, bad);
  }
});

withDb(
  "feed query: a row committed late is delivered, after rows committed before it",
  async ({ db }) => {
    const ds = await newDataset(db, 4);
    const machine = await newUser(db, "machine");
    const before: string[] = [];
    // A model per prediction: a second prediction of one model on an image would supersede
    // the first, which the feed then delivers again (tests/reviews_test.ts).
    for (let i = 0; i < 3; i++) {
      before.push((await predict(db, ds.images[0], machine, `before-${i}`))!.id);
    }

    // A transaction writes a row and stays open...
    const inserted = Promise.withResolvers<string>();
    const finish = Promise.withResolvers<void>();
    const long = transaction(db, async (tx) => {
      inserted.resolve((await predict(tx, ds.images[1], machine))!.id);
      await finish.promise;
    });
    const late = await inserted.promise;
    // ...while later rows (larger ids) commit.
    const after: string[] = [];
    for (let i = 0; i < 3; i++) {
      after.push((await predict(db, ds.images[2], machine, `after-${i}`))!.id);
    }
    assert.ok(after.every((id) => BigInt(id) > BigInt(late)));

    const client = new FeedClient(db, ds.id, null, 2);
    await client.pollUntil(before);
    await client.pollToEnd();
    assert.deepEqual(client.ids(), before, "nothing past the open transaction yet");
    const saved = client.cursor;

    finish.resolve();
    await long;
    await client.pollUntil([late, ...after]);
    assert.deepEqual(client.ids(), [...before, late, ...after]);
    assert.ok(saved !== null);

    // A second client resuming from the saved cursor gets the same rows.
    const resumed = new FeedClient(db, ds.id, null, 10);
    resumed.cursor = saved;
    await resumed.pollUntil([late, ...after]);
    assert.deepEqual(resumed.ids(), [late, ...after]);
  },
);

withDb(
  "feed query: concurrent writers committing out of order: nothing missed",
  { poolMax: 20 },
  async ({ db }) => {
    const ds = await newDataset(db, 10);
    const machine = await newUser(db, "machine");
    const client = new FeedClient(db, ds.id, null, 5);
    let writing = true;
    const poller = (async () => {
      while (writing) {
        await client.pollToEnd();
        await delay(3);
      }
    })();
    const written: string[] = [];
    await Promise.all(Array.from({ length: 12 }, async (_, w) => {
      for (let i = 0; i < 8; i++) {
        await transaction(db, async (tx) => {
          written.push((await predict(tx, ds.images[w % 10], machine, `w${w}-${i}-a`))!.id);
          // Hold the transaction open for a while, so commit order differs from id order.
          await delay(Math.floor(Math.random() * 15));
          written.push(
            (await predict(tx, ds.images[(w + 1) % 10], machine, `w${w}-${i}-b`))!.id,
          );
        });
      }
    }));
    writing = false;
    await poller;
    await client.pollUntil(written);
    const ids = client.ids();
    assert.equal(ids.length, written.length, "each row exactly once");
    assert.deepEqual(new Set(ids), new Set(written));
  },
);

withDb("feed query: paging a few hundred rows with small limits; source filter", async ({ db }) => {
  const ds = await newDataset(db, 50, { k: 10 });
  const machine = await newUser(db, "machine");
  const preds: NewPrediction[] = Array.from({ length: 300 }, (_, i) => ({
    image_id: ds.images[i % 50],
    model: { name: "m", version: "1" },
    labels: ["dog"],
    shapes: [],
  }));
  assert.equal(
    (await createPredictions(db, ds.id, { id: machine, role: "machine" }, preds))!.created,
    300,
  );
  const human: string[] = [];
  for (let u = 0; u < 4; u++) {
    const user = await newUser(db, "annotator");
    for (let i = 0; i < 10; i++) human.push((await claimAndAnnotate(db, ds.id, user)).id);
  }
  const everything = await rawMany<{ id: string; source: string }>(
    db,
    // a.id, not the output column id: as text, "10" sorts before "2".
    `SELECT a.id::text, a.source FROM annotations a WHERE a.dataset_id = $1::bigint
     ORDER BY a.txid, a.id`,
    [ds.id],
  );
  const allIds = everything.map((r) => r.id);
  assert.deepEqual(allIds.slice(300), human, "later transactions come later");
  for (const limit of [1, 7, 50]) {
    const all = new FeedClient(db, ds.id, null, limit);
    await all.pollUntil(allIds);
    assert.deepEqual(all.ids(), allIds, "each row once, in (txid, id) order");
  }
  const humans = new FeedClient(db, ds.id, "human", 7);
  await humans.pollUntil(human);
  assert.deepEqual(humans.ids(), human);
  assert.ok(humans.received.every((a) => a.source === "human" && a.model === null));
  const machines = new FeedClient(db, ds.id, "machine", 11);
  const machineIds = everything.filter((r) => r.source === "machine").map((r) => r.id);
  await machines.pollUntil(machineIds);
  assert.deepEqual(machines.ids(), machineIds);
  assert.ok(machines.received.every((a) => a.model?.name === "m"));

  const empty = (await listDatasetAnnotations(db, ds.id, {
    source: null,
    after: humans.cursor, // the last row of all
    limit: 5,
  }, SEES_ALL))!;
  assert.deepEqual(empty.items, []);
  const moved = decodeFeedCursor(empty.next_cursor)!;
  assert.ok(BigInt(moved.txid) >= BigInt(humans.cursor!.txid), "never back");
  assert.ok(moved.id === "0" || moved.id === humans.cursor!.id, "kept, or moved to a horizon");
  const none = await listDatasetAnnotations(db, "999999", {
    source: null,
    after: null,
    limit: 5,
  }, SEES_ALL);
  assert.equal(none, null, "no such dataset: no page at all");
});

// Predictions, stats and export.

withDb(
  "annotation queries: create_predictions: 10,000 rows by id and external_id in one call",
  async ({ db }) => {
    const ds = await newDataset(db, 5000, { externalIds: true });
    const other = await newDataset(db, 1);
    const machine = await newUser(db, "machine");
    const preds: NewPrediction[] = Array.from({ length: 10_000 }, (_, i) => ({
      ...(i % 2 ? { external_id: `ext-${i % 5000}` } : { image_id: ds.images[i % 5000] }),
      model: { name: i % 3 ? "yolo" : "sam", version: `v${i % 4}` },
      confidence: (i % 100) / 100,
      labels: i % 5 ? ["dog"] : ["dog", "cat", `extra-${i}`],
      shapes: i % 7 ? [] : [{ type: "point", label: "dog", x: i, y: i }],
    }));
    preds[9] = { ...preds[9], external_id: "nope" };
    preds[100] = { ...preds[100], image_id: other.images[0] };
    preds[9999] = { ...preds[9999], external_id: "ext-5000" };
    preds[4242] = { ...preds[4242], image_id: "999999999" };
    const started = performance.now();
    const res = await createPredictions(db, ds.id, { id: machine, role: "machine" }, preds);
    const ms = performance.now() - started;
    assert.deepEqual(res, { created: 9996, not_found: [10, 101, 4243, 10000] });
    assert.ok(ms < 10_000, `${ms} ms`);

    const first = await listImageAnnotations(db, {
      image_id: ds.images[0],
      source: null,
      ...SEES_ALL,
    });
    // Rows 0 and 5000 (both by id); annotations are inserted in input order.
    assert.deepEqual(first.map((a) => a.labels), [
      ["dog", "cat", "extra-0"],
      ["dog", "cat", "extra-5000"],
    ]);
    assert.deepEqual(first[1].model, { name: "yolo", version: "v0" });
    assert.deepEqual(first[0].shapes, [{ type: "point", label: "dog", x: 0, y: 0 }]);
    assert.deepEqual(first[0].model, { name: "sam", version: "v0" });
    assert.equal(first[0].confidence, 0);
    assert.equal(first[0].source, "machine");
    assert.equal(first[0].author_id, machine);
    assert.equal(first[0].dataset_id, ds.id);
    const n = await rawMany<{ n: number }>(
      db,
      "SELECT count(*)::integer AS n FROM annotations WHERE dataset_id = $1::bigint",
      [ds.id],
    );
    assert.equal(n[0].n, 9996);
    assert.deepEqual(await createPredictions(db, ds.id, { id: machine, role: "machine" }, []), {
      created: 0,
      not_found: [],
    });
  },
);

withDb(
  "annotation queries: a claim carries the latest prediction per model; image annotations",
  async ({ db }) => {
    const ds = await newDataset(db, 2);
    const machine = await newUser(db, "machine");
    const annotator = await newUser(db, "annotator");
    const [img, other] = ds.images;
    await predict(db, img, machine, "yolo", "1");
    const sam1 = await predict(db, img, machine, "sam", "1");
    const yolo2 = await predict(db, img, machine, "yolo", "2");
    const yolo1b = await predict(db, img, machine, "yolo", "1");
    await predict(db, other, machine, "clip", "9");
    const claimed = await claimNextImage(db, {
      dataset_id: ds.id,
      user_id: annotator,
      caller_role: "annotator",
    });
    assert.ok(claimed && claimed.state === "new");
    assert.equal(claimed.image.id, img);
    const human = await claimAndAnnotate(db, ds.id, annotator); // the held claim
    assert.equal(human.image_id, img);

    const latest = claimed.predictions;
    assert.deepEqual(latest.map((a) => [a.model?.name, a.model?.version, a.id]), [
      ["sam", "1", sam1!.id],
      ["yolo", "1", yolo1b!.id],
    ]);
    assert.ok(yolo2);
    assert.deepEqual(
      (await listImageAnnotations(db, { image_id: img, source: "human", ...SEES_ALL })).map((a) =>
        a.id
      ),
      [human.id],
    );
    // The current ones: a model's newer prediction superseded its older ones.
    assert.deepEqual(
      (await listImageAnnotations(db, { image_id: img, source: "machine", ...SEES_ALL })).map((
        a,
      ) => a.id),
      [sam1!.id, yolo1b!.id],
    );
    const history = [...ANNOTATION_STATUSES];
    assert.equal(
      (await listImageAnnotations(db, {
        image_id: img,
        source: "machine",
        statuses: history,
        ...SEES_ALL,
      })).length,
      4,
    );
    const all = await listImageAnnotations(db, {
      image_id: img,
      source: null,
      statuses: history,
      ...SEES_ALL,
    });
    assert.deepEqual(all.map((a) => a.id), [...all.map((a) => a.id)].sort((a, b) => +a - +b));
    assert.equal(all.length, 5);
    assert.equal(await predict(db, "999999", machine), null, "no such image");
    const next = await claimNextImage(db, {
      dataset_id: ds.id,
      user_id: annotator,
      caller_role: "annotator",
    });
    assert.ok(next && next.state === "new");
    assert.deepEqual(next.predictions.map((a) => a.model?.name), ["clip"]);
    assert.ok(next.predictions[0].created_at instanceof Date);
  },
);

withDb("annotation queries: stats match a hand count", async ({ db }) => {
  const ds = await newDataset(db, 7, { k: 2, ttl: 30 });
  const machine = await newUser(db, "machine");
  const [a, b, c, d] = [
    await newUser(db, "annotator"),
    await newUser(db, "annotator"),
    await newUser(db, "annotator"),
    await newUser(db, "annotator"),
  ];
  const admin = { caller_ids: [SEES_ALL.caller_id], caller_roles: [SEES_ALL.caller_role] };
  const empty = await getDatasetStats(db, { id: ds.id, ...admin });
  assert.deepEqual(empty, {
    visible: [true],
    images: 7,
    pending: 7,
    in_progress: 0,
    done: 0,
    in_review: 0,
    accepted: 0,
    rejected: 0,
    human_annotations: 0,
    machine_annotations: 0,
    active_claims: 0,
    annotators: [],
    reviewers: [],
  });
  // Image 1: done (a, b). Image 2: a annotated, c holds a claim: in progress.
  await claimAndAnnotate(db, ds.id, a); // image 1
  await claimAndAnnotate(db, ds.id, b); // image 1, done
  await claimAndAnnotate(db, ds.id, a); // image 2
  assert.equal(
    (await claimNextImage(db, { dataset_id: ds.id, user_id: c, caller_role: "annotator" }))?.state,
    "new",
  ); // image 2: in progress
  // Image 3: b and d hold claims: in progress, until d's claim expires.
  assert.equal(
    (await claimNextImage(db, { dataset_id: ds.id, user_id: b, caller_role: "annotator" }))?.state,
    "new",
  ); // image 3
  const dClaim = await claimNextImage(db, {
    dataset_id: ds.id,
    user_id: d,
    caller_role: "annotator",
  }); // image 3: in progress
  assert.ok(dClaim?.state === "new");
  await setClaimExpiry(db, dClaim.claim.id, -1000); // image 3: pending again (one live lease, b's)
  await predict(db, ds.images[0], machine);
  await predict(db, ds.images[5], machine);
  await predict(db, ds.images[6], machine);
  const stats = await getDatasetStats(db, { id: ds.id, ...admin });
  assert.deepEqual(stats, {
    visible: [true],
    images: 7,
    pending: 5,
    in_progress: 1,
    done: 1,
    in_review: 0,
    accepted: 0,
    rejected: 0,
    human_annotations: 3,
    machine_annotations: 3,
    active_claims: 2,
    // Nothing reviewed yet: no acceptance rate (tests/reviews_test.ts has one).
    annotators: [
      { user_id: a, annotations: 2, accepted: 0, rejected: 0, acceptance_rate: null },
      { user_id: b, annotations: 1, accepted: 0, rejected: 0, acceptance_rate: null },
    ],
    reviewers: [],
  });
  assert.equal(await getDatasetStats(db, { id: "999999", ...admin }), null);
  // Several callers at once: one row, and per caller whether they may see the dataset.
  await db.unsafe("UPDATE datasets SET access = 'members' WHERE id = $1::bigint", [ds.id]);
  const mixed = await getDatasetStats(db, {
    id: ds.id,
    caller_ids: [a, SEES_ALL.caller_id, b],
    caller_roles: ["annotator", "admin", "annotator"],
  });
  assert.deepEqual(mixed?.visible, [false, true, false]);
  assert.equal(mixed?.images, 7);
  const outsiders = { id: ds.id, caller_ids: [a, b], caller_roles: annotators([a, b]) };
  assert.equal(await getDatasetStats(db, outsiders), null, "none may see it: nothing is counted");
});

withDb(
  "annotation queries: export streams every image once, in id order, in batches",
  async ({ db }) => {
    const ds = await newDataset(db, 1234, { externalIds: true });
    const machine = await newUser(db, "machine");
    const annotator = await newUser(db, "annotator");
    const humans = new Map<string, string>();
    for (let i = 0; i < 25; i++) {
      const a = await claimAndAnnotate(db, ds.id, annotator);
      humans.set(a.image_id, a.id);
    }
    await createPredictions(
      db,
      ds.id,
      { id: machine, role: "machine" },
      ds.images.flatMap((image_id, i) =>
        Array.from({ length: i % 3 }, (_, j) => ({
          image_id,
          model: { name: `m${j}`, version: "1" },
          confidence: 0.9,
          labels: ["dog"],
          shapes: [],
        }))
      ),
    );
    const machineCount = (i: number) => i % 3;

    for (const source of [null, "human", "machine"] as const) {
      const seen: ExportedImage[] = [];
      let batches = 0;
      for await (
        const batch of exportAnnotations(
          db,
          { dataset_id: ds.id, source: source, ...SEES_ALL },
          100,
        )
      ) {
        assert.ok(batch.length <= 100);
        batches++;
        seen.push(...batch);
      }
      assert.equal(batches, 13, `${source}: 1234 rows in batches of 100`);
      assert.deepEqual(seen.map((img) => img.id), ds.images, `${source}: each image once`);
      for (const [i, img] of seen.entries()) {
        const h = humans.has(img.id) ? 1 : 0;
        const m = machineCount(i);
        const expected = source === "human" ? h : source === "machine" ? m : h + m;
        assert.equal(img.annotations.length, expected, `${source} image ${img.id}`);
        const ids = img.annotations.map((a) => +a.id);
        assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
        for (const a of img.annotations) {
          assert.ok(a.created_at instanceof Date && !isNaN(a.created_at.getTime()));
          assert.equal(a.image_id, img.id);
          assert.equal(a.model === null, a.source === "human");
        }
      }
      assert.equal(seen[0].external_id, "ext-0");
      assert.equal(seen[0].status, humans.has(seen[0].id) ? "done" : "pending");
    }

    // Stopping early closes the cursor and ends its implicit transaction.
    for await (
      const batch of exportAnnotations(db, { dataset_id: ds.id, source: null, ...SEES_ALL }, 10)
    ) {
      assert.equal(batch.length, 10);
      break;
    }
    const openTransactions = async () =>
      (await rawMany<{ n: number }>(
        db,
        `SELECT count(*)::integer AS n FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()
             AND state LIKE 'idle in transaction%'`,
        [],
      ))[0].n;
    const deadline = Date.now() + 5000;
    while (await openTransactions() > 0 && Date.now() < deadline) await delay(20);
    assert.equal(await openTransactions(), 0);
  },
);
