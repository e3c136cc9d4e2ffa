/**
 * Membership × every operation of the spec: read from /api/openapi.json, so an operation added
 * later is in it without anyone listing it. On a dataset whose access is `members`, each
 * operation is called by an admin, by a reviewer, an annotator and a machine that are members, and
 * by a reviewer, an annotator and a machine that are not:
 *
 * - a role the operation does not allow gets its 403, member or not;
 * - an admin and a member get the operation's success (a 2xx or 3xx the spec lists), and for a
 *   read, the dataset's data in the answer (so the probes below look where the data is);
 * - a non-member gets exactly the answer an unknown id gets (the same status and body, ids
 *   aside): a 404, never a 403, so the dataset cannot be told from one that does not exist;
 * - no answer to a non-member carries a byte of the dataset's data (every name, label, URI,
 *   external_id, metadata value and model name of it carries one marker), and nothing a
 *   non-member sends changes the database.
 *
 * An operation with a request body needs a recipe below (a valid body for it), and a path
 * parameter other than datasetId, imageId, claimId, reviewId, annotationId and userId needs a way
 * to be filled: without
 * them the test fails, so a new endpoint cannot skip the rule by being new.
 */
import assert from "node:assert/strict";
import { DIGEST_SQL } from "../testkit/fuzz.ts";
import {
  openApiDocument,
  type Requester,
  type Res,
  type TestApp,
  type TestUser,
  withApp,
} from "./harness.ts";

/** In every string of the hidden dataset; nowhere else. */
const MARK = `s3cr3t${crypto.randomUUID().slice(0, 8)}`;
let seq = 0;

/**
 * A `members` dataset with data everywhere: images, predictions, human annotations, a claim, a
 * review. Every image goes to review (review_rate 1), and one image is left for a caller's own
 * claim.
 */
interface Hidden {
  datasetId: string;
  /** Annotated by the member annotator and predicted by the member machine; in review, leased. */
  imageId: string;
  /** The member annotator's live claim, and its image. */
  claimId: string;
  claimImageId: string;
  /** The member reviewer's live review lease, on imageId. */
  reviewId: string;
  /** The member annotator's annotation of another image, waiting for review without a lease. */
  annotationId: string;
  /** A next_cursor of the dataset's feed. */
  cursor: string;
  label: string;
}

/** Scoped path parameters: the ids a non-member probes with, and the unknown ids beside them. */
const UNKNOWN: Record<string, string> = {
  datasetId: "999999991",
  imageId: "999999992",
  claimId: "999999993",
  reviewId: "999999994",
  annotationId: "999999995",
};

interface Members {
  annotator: TestUser;
  machine: TestUser;
  reviewer: TestUser;
}

async function hidden(h: TestApp, members: Members): Promise<Hidden> {
  const tag = `${MARK}-${++seq}`;
  const label = `${tag}-label`;
  const ok = <T>(res: Res<T>, what: string) => {
    assert.ok(res.status < 300, `${what}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  // deno-lint-ignore no-explicit-any
  const ds: any = ok(
    await h.req("POST", "/api/v1/datasets", {
      name: `${tag}-name`,
      description: `${tag}-description`,
      labels: [label, `${tag}-other`],
      review_rate: 1,
    }),
    "dataset",
  );
  assert.equal(ds.access, "members", "new datasets are for members");
  for (const m of [members.annotator, members.machine, members.reviewer]) {
    ok(await h.req("PUT", `/api/v1/datasets/${ds.id}/members/${m.id}`), "member");
  }
  // deno-lint-ignore no-explicit-any
  const reg: any = ok(
    await members.machine.req("POST", `/api/v1/datasets/${ds.id}/images`, {
      images: [0, 1, 2, 3].map((i) => ({
        // The first by https://, which getImageMedia redirects to as it is (s3:// needs keys).
        uri: i === 0 ? `https://${tag}-host.example/0.jpg` : `s3://${tag}-bucket/${i}.jpg`,
        external_id: `${tag}-ext-${i}`,
        width: 100,
        height: 100,
        priority: 4 - i,
        metadata: { note: `${tag}-meta` },
      })),
    }),
    "images",
  );
  const ids: string[] = reg.images.map((i: { id: string }) => i.id);
  ok(
    await members.machine.req("POST", `/api/v1/datasets/${ds.id}/predictions`, {
      predictions: ids.map((id) => ({
        image_id: id,
        model: { name: `${tag}-model`, version: `${tag}-v` },
        labels: [label],
      })),
    }),
    "predictions",
  );
  const claim = async () => {
    // deno-lint-ignore no-explicit-any
    const c: any = ok(
      await members.annotator.req("POST", `/api/v1/datasets/${ds.id}/claims`),
      "claim",
    );
    return c.claim as { id: string; image_id: string };
  };
  const submitted: string[] = [];
  for (const at of [0, 1]) {
    const c = await claim();
    assert.equal(c.image_id, ids[at], "the highest priority first");
    // deno-lint-ignore no-explicit-any
    const a: any = ok(
      await members.annotator.req("POST", `/api/v1/images/${c.image_id}/annotations`, {
        claim_id: c.id,
        labels: [label],
      }),
      "submit",
    );
    submitted.push(a.id);
  }
  const live = await claim();
  // Review ids far from the other ids: submitReview's body names one, and an answer's ids are
  // compared with an unknown id's by their digits (on a fresh database, image 1 and review 1).
  await h.db.unsafe("SELECT setval('review_ids', greatest(nextval('review_ids'), 500000000))");
  // deno-lint-ignore no-explicit-any
  const review: any = ok(
    await members.reviewer.req("POST", `/api/v1/datasets/${ds.id}/reviews`),
    "review",
  );
  assert.equal(review.image.id, ids[0], "the highest priority first");
  // deno-lint-ignore no-explicit-any
  const feed: any = ok(await h.req("GET", `/api/v1/datasets/${ds.id}/annotations`), "feed");
  return {
    datasetId: ds.id,
    imageId: ids[0],
    claimId: live.id,
    claimImageId: live.image_id,
    reviewId: review.review.id,
    annotationId: submitted[1],
    cursor: feed.next_cursor,
    label,
  };
}

interface Caller {
  name: string;
  user: TestUser;
  /** Sees the hidden dataset: an admin, or a member. */
  sees: boolean;
}

/** One request: path parameters (the template's names), query and body. */
interface Call {
  params: Record<string, string>;
  query?: Record<string, string>;
  body?: unknown;
}

interface Recipe {
  /** The request, given the hidden dataset and the caller. */
  call?(fx: Hidden, caller: Caller, h: TestApp): Promise<Partial<Call>> | Partial<Call>;
  /** The status every allowed caller that sees the dataset gets, when not the spec's success. */
  status?: number;
  /** A member's answer shows the dataset's data: the probes look where the data is. */
  shows?: boolean;
  /**
   * The answer is the changes feed, which may lag for a moment while a transaction of another
   * database ends (feed_horizon cannot place it; tests' databases come and go): a caller that
   * sees the dataset polls, as a feed consumer does, for up to 5 s.
   */
  polled?: boolean;
}

/**
 * A webhook (admins' own, on a documentation address: never sent to, no worker runs) on the
 * dataset, and an event of it (a ping).
 */
async function webhook(h: TestApp, fx: Hidden): Promise<{ webhookId: string; eventId: string }> {
  const hook = await h.req("POST", "/api/v1/webhooks", {
    url: "https://203.0.113.7/hook",
    events: ["annotation.created"],
    dataset_id: fx.datasetId,
  });
  assert.equal(hook.status, 201, JSON.stringify(hook.body));
  const ping = await h.req("POST", `/api/v1/webhooks/${hook.body.webhook.id}/ping`);
  return { webhookId: hook.body.webhook.id, eventId: ping.body.event_id };
}
const onWebhook: Recipe = { call: async (fx, _c, h) => ({ params: await webhook(h, fx) }) };

/**
 * The claim a caller works with: the member annotator's for the member annotator and for those
 * who do not see the dataset (the probe), else a claim of the caller's own (the free image).
 */
async function claimFor(fx: Hidden, c: Caller): Promise<{ id: string; image_id: string }> {
  if (!c.sees || c.user.role === "annotator" || c.user.role === "machine") {
    return { id: fx.claimId, image_id: fx.claimImageId };
  }
  const own = await c.user.req("POST", `/api/v1/datasets/${fx.datasetId}/claims`);
  assert.ok(own.status < 300, JSON.stringify(own.body));
  return own.body.claim;
}

/** The review lease a caller works with: the member reviewer's, or an admin's own. */
async function reviewFor(fx: Hidden, c: Caller): Promise<{ id: string; image_id: string }> {
  if (!c.sees || c.user.role !== "admin") return { id: fx.reviewId, image_id: fx.imageId };
  const own = await c.user.req("POST", `/api/v1/datasets/${fx.datasetId}/reviews`);
  assert.equal(own.status, 201, JSON.stringify(own.body));
  return { id: own.body.review.id, image_id: own.body.image.id };
}

/** How to call each operation; one with a body or an odd parameter must be listed. */
const RECIPES: Record<string, Recipe> = {
  createToken: { call: () => ({ body: { api_key: "ak_nobody" } }), status: 401 },
  createUser: { call: () => ({ body: { name: `mm-user-${++seq}`, role: "annotator" } }) },
  disableUser: {
    call: async (_fx, _c, h) => ({ params: { userId: (await h.user("annotator")).id } }),
  },
  rotateApiKey: { call: (_fx, c) => ({ params: { userId: c.user.id } }) },
  createDataset: { call: () => ({ body: { name: `mm-ds-${++seq}`, labels: ["a"] } }) },
  listDatasets: { shows: true },
  getDataset: { shows: true },
  updateDataset: { call: () => ({ body: { description: "changed" } }) },
  addDatasetMember: {
    call: async (_fx, _c, h) => ({ params: { userId: (await h.user("annotator")).id } }),
  },
  removeDatasetMember: {
    call: async (_fx, _c, h) => ({ params: { userId: (await h.user("annotator")).id } }),
  },
  registerImages: {
    call: () => ({ body: { images: [{ uri: "s3://b/new.jpg", external_id: `new-${++seq}` }] } }),
  },
  // After the first image: the two others.
  listImages: { call: (fx) => ({ query: { cursor: fx.imageId } }), shows: true },
  getImage: { shows: true },
  updateImage: { call: () => ({ body: { priority: 2 } }) },
  setPriorities: {
    call: (fx) => ({ body: { priorities: [{ image_id: fx.imageId, priority: 9 }] } }),
  },
  claimNextImage: { shows: true },
  // An admin and a member reviewer renew and release a claim of their own; an annotator the
  // member annotator's (its own when a member).
  renewClaim: { call: async (fx, c) => ({ params: { claimId: (await claimFor(fx, c)).id } }) },
  releaseClaim: { call: async (fx, c) => ({ params: { claimId: (await claimFor(fx, c)).id } }) },
  createAnnotation: {
    // With a claim for annotators and reviewers, a model for machines, neither for an admin (a
    // correction).
    call: async (fx, c) => {
      if (c.user.role === "machine") {
        return { body: { model: { name: "m", version: "1" }, labels: [fx.label] } };
      }
      if (c.user.role === "admin") return { body: { labels: [fx.label] } };
      const claim = await claimFor(fx, c);
      return {
        params: { imageId: claim.image_id },
        body: { claim_id: claim.id, labels: [fx.label] },
      };
    },
  },
  amendAnnotation: {
    // The member annotator amends its annotation; an admin or a member reviewer one of its own,
    // made on a claim of its own.
    call: async (fx, c) => {
      const body = { labels: [fx.label, fx.label] };
      if (!c.sees || c.user.role === "annotator" || c.user.role === "machine") {
        return { params: { annotationId: fx.annotationId }, body };
      }
      const claim = await claimFor(fx, c);
      const made = await c.user.req("POST", `/api/v1/images/${claim.image_id}/annotations`, {
        claim_id: claim.id,
        labels: [fx.label],
      });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      return { params: { annotationId: made.body.id }, body };
    },
  },
  claimNextReview: { shows: true },
  renewReview: {
    call: async (fx, c) => ({ params: { reviewId: (await reviewFor(fx, c)).id } }),
  },
  // An admin may release anyone's review.
  releaseReview: { call: (fx) => ({ params: { reviewId: fx.reviewId } }) },
  submitReview: {
    call: async (fx, c) => {
      const review = await reviewFor(fx, c);
      return {
        params: { imageId: review.image_id },
        body: { claim_id: review.id, decision: "accept" },
      };
    },
  },
  createPredictions: {
    call: (fx) => ({
      body: {
        predictions: [{
          image_id: fx.imageId,
          model: { name: "m", version: "2" },
          labels: [fx.label],
        }],
      },
    }),
  },
  listImageAnnotations: { shows: true },
  // A non-member polls with a cursor of the dataset's feed; a member from the start.
  listDatasetAnnotations: {
    call: (fx, c) => c.sees ? {} : { query: { after: fx.cursor } },
    shows: true,
    polled: true,
  },
  exportDataset: { shows: true },
  // Webhooks are admins' (403 for every other role, member or not); one may name the dataset.
  createWebhook: {
    call: (fx) => ({
      body: {
        url: "https://203.0.113.7/hook",
        events: ["image.completed"],
        dataset_id: fx.datasetId,
      },
    }),
  },
  getWebhook: onWebhook,
  updateWebhook: {
    call: async (fx, _c, h) => ({ params: await webhook(h, fx), body: { description: "d" } }),
  },
  deleteWebhook: onWebhook,
  rotateWebhookSecret: onWebhook,
  pingWebhook: onWebhook,
  listWebhookDeliveries: onWebhook,
  redeliverWebhookEvent: onWebhook,
};

/** What fills each path parameter by default. */
function defaultParams(fx: Hidden): Record<string, string> {
  return {
    datasetId: fx.datasetId,
    imageId: fx.imageId,
    claimId: fx.claimId,
    reviewId: fx.reviewId,
    annotationId: fx.annotationId,
  };
}

interface SpecOp {
  operationId: string;
  method: string;
  path: string;
  roles: string[] | null;
  hasBody: boolean;
  params: string[];
  success: number[];
}

function specOps(spec: {
  paths: Record<string, Record<string, Record<string, unknown>>>;
}): SpecOp[] {
  const ops: SpecOp[] = [];
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const security = op.security as unknown[] | undefined;
      const secured = security?.some((s) => Object.keys(s as object).includes("Bearer"));
      ops.push({
        operationId: op.operationId as string,
        method: method.toUpperCase(),
        path,
        roles: secured ? op["x-roles"] as string[] : null,
        hasBody: op.requestBody !== undefined,
        params: [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]),
        // 2xx, and getImageMedia's 302.
        success: Object.keys(op.responses as object).map(Number).filter((s) => s < 400),
      });
    }
  }
  return ops;
}

function url(op: SpecOp, call: Call): string {
  const path = op.path.replace(/\{(\w+)\}/g, (_, k) => encodeURIComponent(call.params[k]));
  const q = new URLSearchParams(call.query ?? {}).toString();
  return q ? `${path}?${q}` : path;
}

const text = (res: Res) => typeof res.body === "string" ? res.body : JSON.stringify(res.body);

/** The answer with each id the request named replaced by its parameter's name. */
function idsOut(res: Res, params: Record<string, string>): string {
  let out = text(res);
  for (const [name, value] of Object.entries(params)) {
    out = out.replace(new RegExp(`\\b${value}\\b`, "g"), `{${name}}`);
  }
  return `${res.status} ${out}`;
}

/**
 * The operations, read once from the document an app serves (it needs no database: the pool
 * points nowhere and never connects), so that each is a top-level test of its own.
 */
const OPS = specOps(await openApiDocument());

/** One operation's test, on an app of its own: two members, two non-members and the admin. */
function withCallers(
  name: string,
  fn: (h: TestApp, members: Members, callers: Caller[]) => Promise<void>,
): void {
  withApp(name, async (h) => {
    const members: Members = {
      annotator: await h.user("annotator"),
      machine: await h.user("machine"),
      reviewer: await h.user("reviewer"),
    };
    const callers: Caller[] = [
      { name: "admin", user: h.admin, sees: true },
      { name: "member reviewer", user: members.reviewer, sees: true },
      { name: "non-member reviewer", user: await h.user("reviewer"), sees: false },
      { name: "member annotator", user: members.annotator, sees: true },
      { name: "non-member annotator", user: await h.user("annotator"), sees: false },
      { name: "member machine", user: members.machine, sees: true },
      { name: "non-member machine", user: await h.user("machine"), sees: false },
    ];
    await fn(h, members, callers);
  });
}

Deno.test("membership: every operation can be called: a recipe for each body and parameter", () => {
  // Ids that name no dataset's rows: users, and admins' webhooks and their events.
  const known = new Set([...Object.keys(UNKNOWN), "userId", "webhookId", "eventId"]);
  for (const op of OPS) {
    for (const p of op.params) {
      assert.ok(known.has(p), `${op.operationId}: fill path parameter {${p}} (UNKNOWN)`);
    }
    if (op.hasBody) assert.ok(RECIPES[op.operationId]?.call, `${op.operationId}: a recipe`);
    for (const p of ["userId", "webhookId", "eventId"]) {
      if (op.params.includes(p)) {
        assert.ok(RECIPES[op.operationId]?.call, `${op.operationId}: which ${p}? (a recipe)`);
      }
    }
  }
  assert.ok(OPS.length >= 30, `${OPS.length} operations`);
});

for (const op of OPS) {
  withCallers(
    `membership: ${op.operationId} for members, non-members and admins`,
    async (h, members, callers) => {
      const digest = async () => (await h.db.unsafe(DIGEST_SQL))[0].digest as string;
      const recipe = RECIPES[op.operationId] ?? {};
      const scoped = op.params.some((p) => p in UNKNOWN);
      const request = async (fx: Hidden, c: Caller): Promise<Call> => {
        const made = await recipe.call?.(fx, c, h) ?? {};
        return { ...made, params: { ...defaultParams(fx), ...made.params } };
      };
      const send = (req: Requester, call: Call) => req(op.method, url(op, call), call.body);
      const allowed = (c: Caller) => op.roles === null || op.roles.includes(c.user.role);

      // Those who may not see the dataset, on one fixture: nothing they send to it changes
      // anything (the requests are made first: a recipe may create a user).
      const fx = await hidden(h, members);
      const outsiders = callers.filter((c) => !c.sees);
      const calls = await Promise.all(outsiders.map((c) => request(fx, c)));
      const before = await digest();
      for (const [i, c] of outsiders.entries()) {
        const call = calls[i];
        const res = await send(c.user.req, call);
        const what = `${op.operationId} as ${c.name}`;
        assert.ok(!text(res).includes(MARK), `${what}: the dataset's data in ${text(res)}`);
        if (!allowed(c)) {
          assert.equal(res.status, 403, `${what}: ${text(res)}`);
          continue;
        }
        if (!scoped) {
          const expected = recipe.status ?? op.success;
          assert.ok([expected].flat().includes(res.status), `${what}: ${text(res)}`);
          continue;
        }
        // The same request with unknown ids in the path: the answer must be the same. Only the
        // path's own ids are written as names: on a fresh database a dataset and an image may
        // share an id, and getImage's answer names the image, not the dataset.
        const scopedParams = Object.fromEntries(
          Object.entries(call.params).filter(([k]) => k in UNKNOWN && op.params.includes(k)),
        );
        const unknown = { ...call, params: { ...call.params } };
        for (const k of Object.keys(scopedParams)) unknown.params[k] = UNKNOWN[k];
        const theirs = await send(c.user.req, unknown);
        assert.equal(res.status, 404, `${what}: ${text(res)}`);
        assert.equal(
          idsOut(res, scopedParams),
          idsOut(
            theirs,
            Object.fromEntries(
              Object.keys(scopedParams).map((k) => [k, UNKNOWN[k]]),
            ),
          ),
          `${what}: the answer differs from an unknown id's`,
        );
      }
      if (scoped) {
        assert.equal(await digest(), before, `${op.operationId}: a non-member changed something`);
      }

      // Those who see it, each on a fixture of its own (their calls change things).
      for (const c of callers.filter((c) => c.sees)) {
        const own = op.method === "GET" ? fx : await hidden(h, members);
        let res = await send(c.user.req, await request(own, c));
        for (let i = 0; recipe.polled && i < 50 && !text(res).includes(MARK); i++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          res = await send(c.user.req, await request(own, c));
        }
        const what = `${op.operationId} as ${c.name}`;
        if (!allowed(c)) {
          assert.equal(res.status, 403, `${what}: ${text(res)}`);
          continue;
        }
        const expected = recipe.status ?? op.success;
        assert.ok([expected].flat().includes(res.status), `${what}: ${text(res)}`);
        if (recipe.shows) assert.ok(text(res).includes(MARK), `${what} shows the dataset`);
      }
    },
  );
}
