/**
 * Claims and submits gathered into one statement: lib/db/batcher.ts on its own, then
 * sql/claims/claim_next_images.sql and sql/annotations/create_human_annotations.sql against a
 * real database (tests/claims_sql_test.ts drains datasets through both from two pools).
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { Batcher } from "../lib/db/batcher.ts";
import { isInputError } from "../lib/db/pool.ts";
import { type Handle } from "../lib/db/pool.ts";

import { QueryScope } from "../lib/db/scope.ts";
import {
  type ClaimedHumanAnnotation,
  createHumanAnnotations,
  createMachineAnnotation,
  listImageAnnotations,
} from "../sql/annotations/queries.ts";
import { claimNextImage, claimNextImages } from "../sql/claims/queries.ts";
import { getLease, releaseLease } from "../sql/leases/queries.ts";
import { createDataset } from "../sql/datasets/queries.ts";
import { imageBatch, registerImages } from "../sql/images/queries.ts";
import { annotators, rawMany, SEES_ALL, setClaimExpiry, withDb } from "./harness.ts";

/** After the batcher's deferred flush (setImmediate) has run. */
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => open = resolve);
  return { open, opened };
}

// The Batcher: what it gathers, and what it leaves to the single path.

Deno.test("Batcher: items that arrive together go together; the rest wait for the batch", async () => {
  const sent: string[][] = [];
  const release = gate();
  const b = new Batcher<string, string>({
    key: () => "k",
    exclusive: (item) => [item.split(":")[0]],
    run: async (_key, items) => {
      sent.push(items);
      if (sent.length === 1) await release.opened;
      return items.map((i) => `done ${i}`);
    },
    maxSize: 3,
    maxInFlight: 1,
  });
  const first = b.submit("a:1");
  const second = b.submit("z:1");
  assert.deepEqual(sent, [], "not sent before the requests already arrived are in");
  await tick();
  assert.deepEqual(sent, [["a:1", "z:1"]]);
  // While it runs: a second item of user a waits for a later batch, and at most 3 go together.
  const rest = ["a:2", "b:1", "c:1", "d:1", "e:1"].map((i) => b.submit(i));
  await tick();
  assert.equal(sent.length, 1, "nothing more is sent while a batch runs");
  release.open();
  assert.deepEqual(await Promise.all([first, second, ...rest]), [
    "done a:1",
    "done z:1",
    "done a:2",
    "done b:1",
    "done c:1",
    "done d:1",
    "done e:1",
  ]);
  assert.deepEqual(sent, [["a:1", "z:1"], ["a:2", "b:1", "c:1"], ["d:1", "e:1"]]);
  assert.deepEqual(b.stats, { batches: 3, items: 7 });
});

Deno.test("Batcher: keys are separate lanes, each with its own batches in flight", async () => {
  const sent: string[] = [];
  const release = gate();
  const b = new Batcher<string, string>({
    key: (item) => item[0],
    exclusive: () => [],
    run: async (key, items) => {
      sent.push(`${key}:${items.join(",")}`);
      await release.opened;
      return items;
    },
    maxSize: 10,
    maxInFlight: 1,
  });
  const answers = Promise.all(["x1", "y1"].map((i) => b.submit(i)));
  await tick();
  const later = Promise.all(["x2", "y2"].map((i) => b.submit(i)));
  await tick();
  assert.deepEqual(sent, ["x:x1", "y:y1"]);
  release.open();
  assert.deepEqual(await answers, ["x1", "y1"]);
  assert.deepEqual(await later, ["x2", "y2"]);
  assert.deepEqual(sent, ["x:x1", "y:y1", "x:x2", "y:y2"]);
});

Deno.test("Batcher: a batch refused for its data: every item runs on its own", async () => {
  const refused = Object.assign(new postgres.PostgresError("deadlock detected"), {
    code: "40P01",
  });
  const b = new Batcher<string, string>({
    key: () => "",
    exclusive: () => [],
    run: () => Promise.reject(refused),
    maxSize: 10,
    maxInFlight: 1,
    runAlone: isInputError,
  });
  assert.deepEqual(await Promise.all([b.submit("a"), b.submit("b")]), [undefined, undefined]);
});

Deno.test("Batcher: a batch failing otherwise fails every item with its error", async () => {
  const lost = new Error("write CONNECTION_CLOSED");
  const b = new Batcher<string, string>({
    key: () => "",
    exclusive: () => [],
    run: () => Promise.reject(lost),
    maxSize: 10,
    maxInFlight: 1,
    runAlone: isInputError,
  });
  const answers = await Promise.allSettled([b.submit("a"), b.submit("b")]);
  assert.deepEqual(answers, [
    { status: "rejected", reason: lost },
    { status: "rejected", reason: lost },
  ]);
});

Deno.test("Batcher: a stuck batch does not hold up the items behind it", async () => {
  const release = gate();
  const sent: string[][] = [];
  const b = new Batcher<string, string>({
    key: () => "",
    exclusive: () => [],
    run: async (_key, items) => {
      sent.push(items);
      await release.opened;
      return items;
    },
    maxSize: 10,
    maxInFlight: 1,
    stallMs: 50,
  });
  const stuck = b.submit("stuck");
  await tick();
  const queued = b.submit("queued");
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(await queued, undefined, "released to run on its own after stallMs");
  assert.equal(await b.submit("later"), undefined, "and so is what arrives meanwhile");
  release.open();
  assert.equal(await stuck, "stuck");
  assert.deepEqual(sent, [["stuck"]]);
  await tick();
  const next = b.submit("after");
  await tick();
  assert.deepEqual(sent, [["stuck"], ["after"]], "the lane batches again once it is free");
  assert.equal(await next, "after");
});

Deno.test("Batcher: a queued item whose request expired is never sent", async () => {
  const sent: string[][] = [];
  const release = gate();
  const b = new Batcher<string, string>({
    key: () => "",
    exclusive: () => [],
    run: async (_key, items) => {
      sent.push(items);
      await release.opened;
      return items;
    },
    maxSize: 10,
    maxInFlight: 1,
  });
  const first = b.submit("first");
  await tick();
  const late = new QueryScope();
  const dropped = late.run(() => b.submit("expires while queued"));
  const kept = b.submit("kept");
  late.expire(new Error("deadline"));
  release.open();
  assert.deepEqual(await Promise.all([first, dropped, kept]), ["first", undefined, "kept"]);
  assert.deepEqual(sent, [["first"], ["kept"]]);
  const already = new QueryScope();
  already.expire(new Error("deadline"));
  assert.equal(await already.run(() => b.submit("too late")), undefined);
  assert.equal(sent.length, 2);
});

Deno.test("Batcher: a request expiring cancels its batch, for all in it", async () => {
  let cancelled = 0;
  const release = gate();
  const sent: string[][] = [];
  const scopes: (QueryScope | undefined)[] = [];
  const b = new Batcher<string, string>({
    key: () => "",
    exclusive: () => [],
    run: (_key, items) => {
      sent.push(items);
      const scope = QueryScope.current()!;
      scopes.push(scope);
      if (sent.length === 1) return release.opened.then(() => items);
      // Stands for a query that runs until cancelled, as lib/db/query.ts `run` registers one.
      return new Promise((_resolve, reject) => {
        scope.hold({
          cancel() {
            cancelled++;
            reject(new Error("canceling statement due to user request"));
          },
        });
      });
    },
    maxSize: 10,
    maxInFlight: 1,
  });
  const [a, y] = [new QueryScope(), new QueryScope()];
  const first = b.submit("first");
  await tick();
  const answers = Promise.all([
    a.run(() => b.submit("a")),
    y.run(() => b.submit("y")),
  ]);
  assert.equal(a.inFlight, 0, "a queued item has nothing in flight");
  release.open();
  assert.equal(await first, "first");
  await tick(); // the next batch goes when the first has ended
  assert.deepEqual(sent, [["first"], ["a", "y"]]);
  assert.equal(a.inFlight, 1, "the batch counts as a query in flight of each request in it");
  assert.equal(y.inFlight, 1);
  a.expire(new Error("deadline"));
  assert.equal(cancelled, 1);
  assert.ok(scopes[1]!.expired, "the batch's own scope refuses further queries");
  assert.deepEqual(await answers, [undefined, undefined], "both run their own statements");
  assert.equal(y.expired, null, "y's request is not expired: its own statement may run");
  assert.deepEqual([a.inFlight, y.inFlight], [0, 0]);
});

/** One lane's batcher answering each item with itself, its batches recorded in `sent`. */
function recorder(sent: string[][], timing: { lingerMs: number; expectMs?: number }) {
  return new Batcher<string, string>({
    key: () => "k",
    exclusive: () => [],
    run: (_key, items) => {
      sent.push(items);
      return Promise.resolve(items);
    },
    maxSize: 10,
    maxInFlight: 1,
    ...timing,
  });
}

Deno.test(
  "Batcher: lingerMs: an idle lane waits for company only once batches have had it, unless the item came together with its company",
  async () => {
    const sent: string[][] = [];
    const make = (lingerMs: number) => recorder(sent, { lingerMs });
    const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    /** Two items 5 ms apart, then the batches they went in. */
    const apart = async (b: Batcher<string, string>, names: [string, string]) => {
      sent.length = 0;
      const first = b.submit(names[0]);
      await pause(5);
      const second = b.submit(names[1]);
      assert.deepEqual(await Promise.all([first, second]), names);
      return [...sent];
    };
    const b = make(200);
    // A lone caller's batches have no company: it never waits.
    const t0 = performance.now();
    assert.deepEqual(await b.submit("alone"), "alone");
    assert.ok(performance.now() - t0 < 100, "a lone item is sent at once");
    assert.deepEqual(await apart(b, ["a", "b"]), [["a"], ["b"]]);
    // Once a batch had company, the next item at an idle lane waits for more.
    sent.length = 0;
    await Promise.all([b.submit("x"), b.submit("y")]);
    assert.deepEqual(sent, [["x", "y"]]);
    assert.deepEqual(await apart(b, ["c", "d"]), [["c", "d"]]);
    // Items that arrive together (released by one finished batch) go without lingering, still
    // in one batch.
    sent.length = 0;
    const t1 = performance.now();
    assert.deepEqual(await Promise.all([b.submit("t", true), b.submit("u", true)]), ["t", "u"]);
    assert.ok(performance.now() - t1 < 100, "together: sent after the current I/O, not lingerMs");
    assert.deepEqual(sent, [["t", "u"]]);
    // Without lingerMs the same arrivals go alone.
    const none = make(0);
    await Promise.all([none.submit("x"), none.submit("y")]);
    assert.deepEqual(await apart(none, ["e", "f"]), [["e"], ["f"]]);
  },
);

Deno.test(
  "Batcher: expect: an idle lane under load waits for the callers announced, and no longer",
  async () => {
    const sent: string[][] = [];
    const b = recorder(sent, { lingerMs: 5, expectMs: 300 });
    const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    // Under load: the latest batch had company.
    await Promise.all([b.submit("x"), b.submit("y")]);
    // Three announced: the first two wait past the linger for the third, which sends at once.
    sent.length = 0;
    b.expect("k", 3);
    const t0 = performance.now();
    const first = [b.submit("a"), b.submit("b")];
    await pause(50);
    assert.deepEqual(sent, [], "held for the announced callers, past lingerMs");
    const third = b.submit("c");
    assert.deepEqual(await Promise.all([...first, third]), ["a", "b", "c"]);
    assert.deepEqual(sent, [["a", "b", "c"]]);
    assert.ok(performance.now() - t0 < 250, "sent when the last arrived, not at expectMs");
    // Announced callers who do not all come: the lane sends at expectMs and forgets them.
    sent.length = 0;
    b.expect("k", 5);
    const t1 = performance.now();
    assert.deepEqual(await Promise.all([b.submit("d"), b.submit("e")]), ["d", "e"]);
    assert.ok(performance.now() - t1 >= 290, "waited for the missing three until expectMs");
    const t2 = performance.now();
    assert.deepEqual(await Promise.all([b.submit("f"), b.submit("g")]), ["f", "g"]);
    assert.ok(performance.now() - t2 < 150, "the next items wait only the linger");
    assert.deepEqual(sent, [["d", "e"], ["f", "g"]]);
    // Items released together are not held, announced or not.
    sent.length = 0;
    b.expect("k", 4);
    const t3 = performance.now();
    await Promise.all([b.submit("t", true), b.submit("u", true)]);
    assert.ok(performance.now() - t3 < 150);
    // Without expectMs, expect changes nothing.
    const plain = recorder([], { lingerMs: 5 });
    await Promise.all([plain.submit("x"), plain.submit("y")]);
    plain.expect("k", 3);
    const t4 = performance.now();
    await plain.submit("a");
    assert.ok(performance.now() - t4 < 150, "only the linger");
  },
);

let seq = 0;

async function dataset(db: Handle, opts: { k?: number; priorities: number[]; size?: number }) {
  const ds = (await createDataset(db, {
    name: `batch-${++seq}`,
    description: null,
    labels: ["cat", 'we"ird, {label}\\'],
    annotations_per_image: opts.k ?? 1,
    claim_ttl_seconds: 900,
    access: "open",
  }))!;
  const images = await registerImages(
    db,
    imageBatch(
      ds.id,
      opts.priorities.map((priority, i) => ({
        uri: `s3://b/${seq}/${i}.jpg`,
        priority,
        width: opts.size ?? null,
        height: opts.size ?? null,
      })),
      SEES_ALL,
    ),
  );
  return { id: ds.id, images: images.map((r) => r.id!) };
}

async function users(db: Handle, n: number): Promise<string[]> {
  const rows = await rawMany<{ id: string }>(
    db,
    `INSERT INTO users (name, role)
     SELECT 'batch-user-' || $1::integer || '-' || g, 'annotator'
     FROM generate_series(1, $2::integer) g
     RETURNING id::text`,
    [++seq, n],
  );
  return rows.map((r) => r.id);
}

// claim_next_images: several callers in one statement.

withDb(
  "claim_next_images: new claims on distinct images, highest priority first",
  { poolMax: 4 },
  async ({ db }) => {
    const ds = await dataset(db, { priorities: [1, 9, 5, 7, 3] });
    const us = await users(db, 3);
    const got = await claimNextImages(db, {
      dataset_id: ds.id,
      user_ids: us,
      user_roles: annotators(us),
      after_claim_ids: null,
    });
    assert.ok(got.every((o) => o?.state === "new"));
    const images = got.map((o) => o?.state === "new" ? o.image.id : "");
    assert.deepEqual(new Set(images), new Set([ds.images[1], ds.images[3], ds.images[2]]));
    for (const [i, o] of got.entries()) {
      assert.ok(o?.state === "new");
      assert.equal(o.claim.user_id, us[i]);
      assert.equal(o.image.status, "in_progress");
      const claim = await getLease(db, { kind: "annotate", id: o.claim.id, ...SEES_ALL });
      assert.equal(claim?.image_id, o.image.id);
      assert.equal(claim?.active, true);
    }
  },
);

withDb(
  "claim_next_images: held, expired and new callers in one batch",
  { poolMax: 4 },
  async ({ db }) => {
    const ds = await dataset(db, { priorities: [5, 4, 3, 2] });
    const [holder, lapsed, fresh] = await users(db, 3);
    const held = await claimNextImage(db, {
      dataset_id: ds.id,
      user_id: holder,
      caller_role: "annotator",
    });
    const old = await claimNextImage(db, {
      dataset_id: ds.id,
      user_id: lapsed,
      caller_role: "annotator",
    });
    assert.ok(held?.state === "new" && old?.state === "new");
    await setClaimExpiry(db, old.claim.id, -1000);
    const [a, b] = await claimNextImages(db, {
      dataset_id: ds.id,
      user_ids: [holder, lapsed],
      user_roles: annotators([holder, lapsed]),
      after_claim_ids: null,
    });
    assert.ok(a?.state === "held");
    assert.deepEqual(a.claim, held.claim);
    assert.equal(b, undefined, "an expired active claim is left to claim_next_image.sql");
    // ... which revives it, its slot being free.
    const revived = await claimNextImage(db, {
      dataset_id: ds.id,
      user_id: lapsed,
      caller_role: "annotator",
    });
    assert.ok(revived?.state === "held");
    assert.equal(revived.claim.id, old.claim.id);
    // An expired lease frees its slot for anyone: the batch's new caller may take it.
    await setClaimExpiry(db, old.claim.id, -1000);
    const [c] = await claimNextImages(db, {
      dataset_id: ds.id,
      user_ids: [fresh],
      user_roles: annotators([fresh]),
      after_claim_ids: null,
    });
    assert.ok(c?.state === "new");
    assert.equal(c.image.id, old.image.id);
    const ousted = await claimNextImage(db, {
      dataset_id: ds.id,
      user_id: lapsed,
      caller_role: "annotator",
    });
    assert.ok(ousted?.state === "new");
    assert.equal(ousted.image.id, ds.images[2]);
    assert.equal(
      (await getLease(db, { kind: "annotate", id: old.claim.id, ...SEES_ALL }))?.end_reason,
      "expired",
    );
  },
);

withDb("claim_next_images: more callers than images: the rest are left to the single path", {
  poolMax: 4,
}, async ({ db }) => {
  const ds = await dataset(db, { priorities: [1, 2] });
  const us = await users(db, 4);
  const got = await claimNextImages(db, {
    dataset_id: ds.id,
    user_ids: us,
    user_roles: annotators(us),
    after_claim_ids: null,
  });
  assert.equal(got.filter((o) => o?.state === "new").length, 2);
  assert.equal(got.filter((o) => o === undefined).length, 2);
  assert.deepEqual(
    await claimNextImages(db, {
      dataset_id: "999999",
      user_ids: us.slice(0, 1),
      user_roles: annotators(us.slice(0, 1)),
      after_claim_ids: null,
    }),
    [undefined],
  );
});

withDb("claim_next_images: k=2: an image a caller annotated is not taken for the batch", {
  poolMax: 4,
}, async ({ db }) => {
  const ds = await dataset(db, { k: 2, priorities: [9, 1] });
  const [u1, u2] = await users(db, 2);
  const first = await claimNextImage(db, {
    dataset_id: ds.id,
    user_id: u1,
    caller_role: "annotator",
  });
  assert.ok(first?.state === "new");
  assert.equal(first.image.id, ds.images[0]);
  const [made] = await createHumanAnnotations(db, [{
    claim_id: first.claim.id,
    image_id: first.image.id,
    user_id: u1,
    caller_role: "annotator",
    labels: ["cat"],
    shapes: [],
  }]);
  assert.ok(made);
  // u1 annotated image 0, so the batch takes image 1 for either of them.
  const got = await claimNextImages(db, {
    dataset_id: ds.id,
    user_ids: [u1, u2],
    user_roles: annotators([u1, u2]),
    after_claim_ids: null,
  });
  const taken = got.flatMap((o) => o?.state === "new" ? [o.image.id] : []);
  assert.ok(!taken.includes(ds.images[0]) || taken.length === 0);
  for (const o of got) if (o?.state === "new") assert.equal(o.image.id, ds.images[1]);
});

withDb(
  "claim_next_images after a submit: only callers whose submitted claim ended completed",
  { poolMax: 4 },
  async ({ db }) => {
    const ds = await dataset(db, { priorities: [9, 8, 7, 6, 5, 4] });
    const [done, released, other] = await users(db, 3);
    const claimed = await claimNextImages(db, {
      dataset_id: ds.id,
      user_ids: [done, released, other],
      user_roles: annotators([done, released, other]),
      after_claim_ids: null,
    });
    const [d, r, o] = claimed.map((c) => {
      assert.ok(c?.state === "new");
      return c;
    });
    const [saved] = await createHumanAnnotations(db, [{
      claim_id: d.claim.id,
      image_id: d.image.id,
      user_id: done,
      caller_role: "annotator",
      labels: ["cat"],
      shapes: [],
    }]);
    assert.ok(saved);
    const gone = await releaseLease(db, {
      kind: "annotate",
      claim_id: r.claim.id,
      user_id: released,
      caller_id: released,
      caller_role: "annotator",
    });
    assert.ok(gone);
    // `other` names done's completed claim as theirs, and still holds their own.
    const next = await claimNextImages(db, {
      dataset_id: ds.id,
      user_ids: [done, released, other],
      user_roles: annotators([done, released, other]),
      after_claim_ids: [d.claim.id, r.claim.id, d.claim.id],
    });
    assert.ok(next[0]?.state === "new", "the completed claim's caller gets the next image");
    // The released image, back in the queue, is the highest left.
    assert.equal(r.image.id, ds.images[1]);
    assert.equal(next[0].image.id, ds.images[1]);
    assert.deepEqual(next.slice(1), [undefined, undefined]);
    // Nothing was written for the other two: no claim for the releaser, the other's unchanged.
    const rows = await rawMany<{ user_id: string; claim_id: string; active: boolean }>(
      db,
      `SELECT user_id::text, claim_id::text, active FROM current_claims
       WHERE dataset_id = $1::bigint AND user_id = ANY ($2::bigint[]) ORDER BY user_id`,
      [ds.id, [released, other]],
    );
    assert.deepEqual([...rows], [
      { user_id: released, claim_id: r.claim.id, active: false },
      { user_id: other, claim_id: o.claim.id, active: true },
    ]);
  },
);

withDb(
  "claim_next_images: the claim carries the latest prediction per model",
  { poolMax: 4 },
  async ({ db }) => {
    const ds = await dataset(db, { priorities: [1] });
    const [machine] = await rawMany<{ id: string }>(
      db,
      `INSERT INTO users (name, role) VALUES ('batch-model-' || $1::integer, 'machine')
         RETURNING id::text`,
      [++seq],
    );
    for (const version of ["1", "2"]) {
      await createMachineAnnotation(db, {
        caller_role: "machine",
        image_id: ds.images[0],
        author_id: machine.id,
        model: { name: "m", version },
        confidence: 0.5,
        labels: ["cat"],
        shapes: [],
      });
    }
    const [u] = await users(db, 1);
    const [o] = await claimNextImages(db, {
      dataset_id: ds.id,
      user_ids: [u],
      user_roles: annotators([u]),
      after_claim_ids: null,
    });
    assert.ok(o?.state === "new");
    assert.deepEqual(o.predictions.map((p) => p.model), [{ name: "m", version: "2" }]);
  },
);

withDb(
  "create_human_annotations: each submit accepted or refused as if alone",
  { poolMax: 4 },
  async ({ db }) => {
    const ds = await dataset(db, { priorities: [6, 5, 4, 3, 2, 1], size: 100 });
    const us = await users(db, 6);
    const claims = await claimNextImages(db, {
      dataset_id: ds.id,
      user_ids: us,
      user_roles: annotators(us),
      after_claim_ids: null,
    });
    const c = claims.map((o) => {
      assert.ok(o?.state === "new");
      return o;
    });
    const item = (i: number, extra: Partial<ClaimedHumanAnnotation> = {}) => ({
      claim_id: c[i].claim.id,
      image_id: c[i].image.id,
      user_id: us[i],
      caller_role: "annotator" as const,
      labels: ["cat"],
      shapes: [{ type: "bbox" as const, label: "cat", x: 10, y: 10, width: 20, height: 20 }],
      ...extra,
    });
    const odd = 'we"ird, {label}\\';
    const batch: ClaimedHumanAnnotation[] = [
      item(0, { labels: [odd, "cat"] }),
      item(1, { labels: ["dog"] }), // not a dataset label
      item(2, { shapes: [{ type: "point", label: "cat", x: 101, y: 5 }] }), // outside 100x100
      item(3, { user_id: us[4] }), // someone else's claim (us[4] holds c[4])
      item(5),
    ];
    const got = await createHumanAnnotations(db, batch);
    assert.deepEqual(got.map((a) => a !== undefined), [true, false, false, false, true]);
    assert.deepEqual(got[0]!.labels, [odd, "cat"], "labels round-trip through the JSON");
    assert.equal(got[0]!.source, "human");
    assert.equal(got[0]!.author_id, us[0]);
    assert.equal(got[4]!.image_id, c[5].image.id);
    for (const i of [1, 2, 3, 4]) {
      assert.deepEqual(
        await listImageAnnotations(db, { image_id: c[i].image.id, source: null, ...SEES_ALL }),
        [],
        "nothing written",
      );
      assert.equal(
        (await getLease(db, { kind: "annotate", id: c[i].claim.id, ...SEES_ALL }))?.active,
        true,
        "the claim still holds",
      );
    }
    for (const i of [0, 5]) {
      const claim = await getLease(db, { kind: "annotate", id: c[i].claim.id, ...SEES_ALL });
      assert.equal(claim?.end_reason, "completed");
    }
    // A completed claim submitted again is refused.
    assert.deepEqual(await createHumanAnnotations(db, [item(0)]), [undefined]);
  },
);
