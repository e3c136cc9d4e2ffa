/**
 * The role × operation matrix: every operation, called by each role and with no token, answers
 * exactly what the table below says. The table is written by hand, not read from the code, and
 * the test also fails when the spec has an operation the table does not list.
 */
import assert from "node:assert/strict";
import { type Requester, type TestApp, withApp } from "./harness.ts";

type Caller = "admin" | "reviewer" | "annotator" | "machine" | "none";
const CALLERS: Caller[] = ["admin", "reviewer", "annotator", "machine", "none"];

interface Op {
  operationId: string;
  /** Roles that may call it; the others get 403, no token gets 401. */
  allowed: Caller[];
  /** The status an allowed caller gets. */
  ok: number;
  /** The spec's `security` when it is not the one the roles imply. */
  security?: unknown[];
  call(req: Requester, fx: Fixtures, caller: { id: string }): Promise<{ status: number }>;
}

interface Fixtures {
  datasetId: string;
  imageId: string;
  userId: string;
  /** A claim of the fixture user (an annotator) on a second image of the dataset. */
  claimId: string;
  /** A webhook (on a documentation address: never sent to, no worker runs) and a ping of it. */
  webhookId: string;
  eventId: string;
  /** An image in review (annotated by another annotator), and that annotation. */
  reviewImageId: string;
  annotationId: string;
}

const ALL: Caller[] = ["admin", "reviewer", "annotator", "machine"];
let seq = 0;

const OPS: Op[] = [
  {
    operationId: "getHealth",
    allowed: [...ALL, "none"],
    ok: 200,
    call: (r) => r("GET", "/healthz"),
  },
  {
    operationId: "getReadiness",
    allowed: [...ALL, "none"],
    ok: 200,
    call: (r) => r("GET", "/readyz"),
  },
  {
    // Open unless METRICS_TOKEN is set (tests/observability_test.ts covers the token).
    operationId: "getMetrics",
    allowed: [...ALL, "none"],
    security: [{}, { MetricsToken: [] }],
    ok: 200,
    call: (r) => r("GET", "/metrics"),
  },
  {
    operationId: "createToken",
    allowed: [...ALL, "none"],
    ok: 401, // an unknown key, whoever asks: the operation itself is open
    call: (r) => r("POST", "/api/v1/auth/token", { api_key: "ak_nobody" }),
  },
  { operationId: "getMe", allowed: ALL, ok: 200, call: (r) => r("GET", "/api/v1/me") },
  {
    operationId: "createUser",
    allowed: ["admin"],
    ok: 201,
    call: (r) => r("POST", "/api/v1/users", { name: `m-${++seq}`, role: "annotator" }),
  },
  { operationId: "listUsers", allowed: ["admin"], ok: 200, call: (r) => r("GET", "/api/v1/users") },
  {
    operationId: "disableUser",
    allowed: ["admin"],
    ok: 204,
    call: (r, fx) => r("DELETE", `/api/v1/users/${fx.userId}`),
  },
  {
    operationId: "rotateApiKey",
    allowed: ALL, // for oneself; another user's key is the admin's alone (tested in auth_test)
    ok: 200,
    call: (r, _fx, me) => r("POST", `/api/v1/users/${me.id}/api-key`),
  },
  {
    operationId: "createDataset",
    allowed: ["admin"],
    ok: 201,
    call: (r) => r("POST", "/api/v1/datasets", { name: `m-${++seq}`, labels: ["a"] }),
  },
  { operationId: "listDatasets", allowed: ALL, ok: 200, call: (r) => r("GET", "/api/v1/datasets") },
  {
    operationId: "getDataset",
    allowed: ALL,
    ok: 200,
    call: (r, fx) => r("GET", `/api/v1/datasets/${fx.datasetId}`),
  },
  {
    operationId: "updateDataset",
    allowed: ["admin"],
    ok: 200,
    call: (r, fx) => r("PATCH", `/api/v1/datasets/${fx.datasetId}`, { description: "d" }),
  },
  {
    operationId: "listDatasetMembers",
    allowed: ["admin"],
    ok: 200,
    call: (r, fx) => r("GET", `/api/v1/datasets/${fx.datasetId}/members`),
  },
  {
    operationId: "addDatasetMember",
    allowed: ["admin"],
    ok: 204,
    call: (r, fx) => r("PUT", `/api/v1/datasets/${fx.datasetId}/members/${fx.userId}`),
  },
  {
    operationId: "removeDatasetMember",
    allowed: ["admin"],
    ok: 204,
    call: (r, fx) => r("DELETE", `/api/v1/datasets/${fx.datasetId}/members/${fx.userId}`),
  },
  {
    operationId: "registerImages",
    allowed: ["admin", "machine"],
    ok: 200,
    call: (r, fx) =>
      r("POST", `/api/v1/datasets/${fx.datasetId}/images`, {
        images: [{ uri: "s3://b/m.jpg", external_id: `m-${++seq}` }],
      }),
  },
  {
    operationId: "listImages",
    allowed: ALL,
    ok: 200,
    call: (r, fx) => r("GET", `/api/v1/datasets/${fx.datasetId}/images`),
  },
  {
    operationId: "getImage",
    allowed: ALL,
    ok: 200,
    call: (r, fx) => r("GET", `/api/v1/images/${fx.imageId}`),
  },
  {
    // The fixture's s3:// image with nothing configured: 404 media_unavailable once allowed
    // (tests/media_test.ts follows the redirect, and the URL token that stands in for a role).
    operationId: "getImageMedia",
    allowed: ALL,
    ok: 404,
    security: [{ Bearer: [] }, { UrlToken: [] }],
    call: (r, fx) => r("GET", `/api/v1/images/${fx.imageId}/media`),
  },
  {
    operationId: "updateImage",
    allowed: ["admin", "machine"],
    ok: 200,
    call: (r, fx) => r("PATCH", `/api/v1/images/${fx.imageId}`, { priority: 2 }),
  },
  {
    operationId: "deleteImage",
    // Not machines: it deletes human annotations (issue 3: machines register, prioritise,
    // predict and read).
    allowed: ["admin"],
    ok: 204,
    call: (r, fx) => r("DELETE", `/api/v1/images/${fx.imageId}`),
  },
  {
    operationId: "setPriorities",
    allowed: ["admin", "machine"],
    ok: 200,
    call: (r, fx) =>
      r("PUT", `/api/v1/datasets/${fx.datasetId}/priorities`, {
        priorities: [{ image_id: fx.imageId, priority: 1 }],
      }),
  },
  {
    operationId: "getDatasetStats",
    allowed: ALL,
    ok: 200,
    call: (r, fx) => r("GET", `/api/v1/datasets/${fx.datasetId}/stats`),
  },
  {
    operationId: "claimNextImage",
    allowed: ["admin", "reviewer", "annotator"],
    ok: 201,
    call: (r, fx) => r("POST", `/api/v1/datasets/${fx.datasetId}/claims`),
  },
  {
    operationId: "renewClaim",
    allowed: ["admin", "reviewer", "annotator"],
    ok: 200,
    call: async (r, fx) => r("POST", `/api/v1/claims/${await ownClaim(r, fx)}/renew`),
  },
  {
    // Holder or admin; another annotator's claim is 403 (tests/claims_test.ts).
    operationId: "releaseClaim",
    allowed: ["admin", "reviewer", "annotator"],
    ok: 204,
    call: async (r, fx) => r("DELETE", `/api/v1/claims/${await ownClaim(r, fx)}`),
  },
  {
    // Human with a claim (annotator, admin) or machine with a model: see tests/annotations_test.ts.
    operationId: "createAnnotation",
    allowed: ALL,
    ok: 201,
    call: async (r, fx) => {
      const claim = await r("POST", `/api/v1/datasets/${fx.datasetId}/claims`);
      if (claim.status === 201) {
        const { id, image_id } = claim.body.claim;
        return r("POST", `/api/v1/images/${image_id}/annotations`, { claim_id: id, labels: ["a"] });
      }
      const body = { model: { name: "m", version: "1" }, labels: ["a"] };
      return r("POST", `/api/v1/images/${fx.imageId}/annotations`, body);
    },
  },
  {
    operationId: "createPredictions",
    allowed: ["admin", "machine"],
    ok: 200,
    call: (r, fx) =>
      r("POST", `/api/v1/datasets/${fx.datasetId}/predictions`, {
        predictions: [{ image_id: fx.imageId, model: { name: "m", version: "1" }, empty: true }],
      }),
  },
  {
    operationId: "listImageAnnotations",
    allowed: ["admin", "reviewer", "machine"],
    ok: 200,
    call: (r, fx) => r("GET", `/api/v1/images/${fx.imageId}/annotations`),
  },
  {
    // The author amends their own (tests/reviews_test.ts): each caller annotates, then amends.
    operationId: "amendAnnotation",
    allowed: ["admin", "reviewer", "annotator"],
    ok: 201,
    call: async (r, fx) => {
      const claim = await r("POST", `/api/v1/datasets/${fx.datasetId}/claims`);
      let id = fx.annotationId;
      if (claim.status === 201) {
        const { id: claimId, image_id } = claim.body.claim;
        const a = await r("POST", `/api/v1/images/${image_id}/annotations`, {
          claim_id: claimId,
          labels: ["a"],
        });
        id = a.body.id;
      }
      return r("PUT", `/api/v1/annotations/${id}`, { labels: ["b"] });
    },
  },
  {
    operationId: "claimNextReview",
    allowed: ["admin", "reviewer"],
    ok: 201,
    call: (r, fx) => r("POST", `/api/v1/datasets/${fx.datasetId}/reviews`),
  },
  {
    operationId: "renewReview",
    allowed: ["admin", "reviewer"],
    ok: 200,
    call: async (r, fx) => r("POST", `/api/v1/reviews/${await ownReview(r, fx)}/renew`),
  },
  {
    operationId: "releaseReview",
    allowed: ["admin", "reviewer"],
    ok: 204,
    call: async (r, fx) => r("DELETE", `/api/v1/reviews/${await ownReview(r, fx)}`),
  },
  {
    operationId: "submitReview",
    allowed: ["admin", "reviewer"],
    ok: 200,
    call: async (r, fx) => {
      const review = await r("POST", `/api/v1/datasets/${fx.datasetId}/reviews`);
      const id = review.status === 201 ? review.body.review.id : "1";
      return r("POST", `/api/v1/images/${fx.reviewImageId}/reviews`, {
        claim_id: id,
        decision: "accept",
      });
    },
  },
  {
    operationId: "listDatasetAnnotations",
    allowed: ["admin", "machine"],
    ok: 200,
    call: (r, fx) => r("GET", `/api/v1/datasets/${fx.datasetId}/annotations`),
  },
  {
    operationId: "exportDataset",
    allowed: ["admin", "machine"],
    ok: 200,
    call: (r, fx) => r("GET", `/api/v1/datasets/${fx.datasetId}/export?format=coco`),
  },
  {
    operationId: "createWebhook",
    allowed: ["admin"],
    ok: 201,
    call: (r) =>
      r("POST", "/api/v1/webhooks", {
        url: "https://203.0.113.7/hook",
        events: ["image.completed"],
      }),
  },
  {
    operationId: "listWebhooks",
    allowed: ["admin"],
    ok: 200,
    call: (r) => r("GET", "/api/v1/webhooks"),
  },
  {
    operationId: "getWebhook",
    allowed: ["admin"],
    ok: 200,
    call: (r, fx) => r("GET", `/api/v1/webhooks/${fx.webhookId}`),
  },
  {
    operationId: "updateWebhook",
    allowed: ["admin"],
    ok: 200,
    call: (r, fx) => r("PATCH", `/api/v1/webhooks/${fx.webhookId}`, { description: "d" }),
  },
  {
    operationId: "deleteWebhook",
    allowed: ["admin"],
    ok: 204,
    call: (r, fx) => r("DELETE", `/api/v1/webhooks/${fx.webhookId}`),
  },
  {
    operationId: "rotateWebhookSecret",
    allowed: ["admin"],
    ok: 200,
    call: (r, fx) => r("POST", `/api/v1/webhooks/${fx.webhookId}/secret`),
  },
  {
    operationId: "pingWebhook",
    allowed: ["admin"],
    ok: 202,
    call: (r, fx) => r("POST", `/api/v1/webhooks/${fx.webhookId}/ping`),
  },
  {
    operationId: "listWebhookDeliveries",
    allowed: ["admin"],
    ok: 200,
    call: (r, fx) => r("GET", `/api/v1/webhooks/${fx.webhookId}/deliveries`),
  },
  {
    operationId: "redeliverWebhookEvent",
    allowed: ["admin"],
    ok: 202,
    call: (r, fx) => r("POST", `/api/v1/webhooks/${fx.webhookId}/events/${fx.eventId}/redeliver`),
  },
];

/**
 * The caller's own claim in the fixture dataset when it may claim; otherwise a claim of the
 * fixture's annotator (a forbidden role is refused before the claim is looked at).
 */
async function ownClaim(r: Requester, fx: Fixtures): Promise<string> {
  const res = await r("POST", `/api/v1/datasets/${fx.datasetId}/claims`);
  return res.status === 201 ? res.body.claim.id : fx.claimId;
}

/** The caller's own review lease when it may review; otherwise any id (refused by role first). */
async function ownReview(r: Requester, fx: Fixtures): Promise<string> {
  const res = await r("POST", `/api/v1/datasets/${fx.datasetId}/reviews`);
  return res.status === 201 ? res.body.review.id : "1";
}

/**
 * Fresh objects for each call, so one call's effect (a delete) never changes another's answer.
 * The dataset is `open`: this matrix is about roles; tests/membership_matrix_test.ts adds
 * membership.
 */
async function fixtures(h: TestApp): Promise<Fixtures> {
  const ds = await h.req("POST", "/api/v1/datasets", {
    name: `fx-${++seq}`,
    labels: ["a", "b"],
    access: "open",
    review_rate: 1,
  });
  // Three images: another annotator's annotation puts the first in review, the fixture user's
  // claim takes the second, and a caller's own claim the third.
  const img = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
    images: [
      { uri: "s3://b/fx.jpg", width: 100, height: 100, priority: 1 },
      { uri: "s3://b/fx2.jpg", width: 100, height: 100, priority: 0 },
      { uri: "s3://b/fx3.jpg", width: 100, height: 100, priority: 2 },
    ],
  });
  const author = await h.req("POST", "/api/v1/users", { name: `fx-${++seq}`, role: "annotator" });
  const authorToken = await h.anon("POST", "/api/v1/auth/token", { api_key: author.body.api_key });
  const authorReq = h.client(authorToken.body.access_token);
  const authorClaim = await authorReq("POST", `/api/v1/datasets/${ds.body.id}/claims`);
  const annotation = await authorReq(
    "POST",
    `/api/v1/images/${img.body.images[2].id}/annotations`,
    {
      claim_id: authorClaim.body.claim.id,
      labels: ["a"],
    },
  );
  const user = await h.req("POST", "/api/v1/users", { name: `fx-${++seq}`, role: "annotator" });
  const token = await h.anon("POST", "/api/v1/auth/token", { api_key: user.body.api_key });
  const claim = await h.client(token.body.access_token)(
    "POST",
    `/api/v1/datasets/${ds.body.id}/claims`,
  );
  const hook = await h.req("POST", "/api/v1/webhooks", {
    url: "https://203.0.113.7/hook",
    events: ["annotation.created"],
  });
  const ping = await h.req("POST", `/api/v1/webhooks/${hook.body.webhook.id}/ping`);
  return {
    webhookId: hook.body.webhook.id,
    eventId: ping.body.event_id,
    datasetId: ds.body.id,
    imageId: img.body.images[0].id,
    reviewImageId: img.body.images[2].id,
    annotationId: annotation.body.id,
    userId: user.body.user.id,
    claimId: claim.body.claim.id,
  };
}

withApp("authz: the matrix lists every operation in the spec, with the spec's roles", async (h) => {
  const spec = (await h.anon("GET", "/api/openapi.json")).body;
  type SpecOp = { operationId: string; security?: unknown[]; "x-roles"?: string[] };
  const inSpec = new Map<string, SpecOp>();
  for (const methods of Object.values(spec.paths) as Record<string, SpecOp>[]) {
    for (const op of Object.values(methods)) {
      inSpec.set(op.operationId, op);
    }
  }
  assert.deepEqual([...inSpec.keys()].sort(), OPS.map((o) => o.operationId).sort());
  for (const op of OPS) {
    const specOp = inSpec.get(op.operationId)!;
    if (op.allowed.includes("none")) {
      assert.deepEqual(
        specOp.security,
        op.security ?? [],
        `${op.operationId} is open, and says so`,
      );
    } else {
      assert.deepEqual(specOp.security, op.security ?? [{ Bearer: [] }], op.operationId);
      assert.deepEqual(
        [...specOp["x-roles"]!].sort(),
        [...op.allowed].sort(),
        op.operationId,
      );
    }
  }
});

// Every operation × every role answers what the matrix says: one test per operation.
for (const op of OPS) {
  withApp(`authz: ${op.operationId} answers each role as the matrix says`, async (h) => {
    const users = {
      admin: h.admin,
      reviewer: await h.user("reviewer"),
      annotator: await h.user("annotator"),
      machine: await h.user("machine"),
    };
    for (const caller of CALLERS) {
      const fx = await fixtures(h);
      const req = caller === "none" ? h.anon : users[caller].req;
      const me = caller === "none" ? { id: fx.userId } : users[caller];
      const res = await op.call(req, fx, me);
      const expected = op.allowed.includes(caller) ? op.ok : caller === "none" ? 401 : 403;
      assert.equal(
        res.status,
        expected,
        `${op.operationId} as ${caller}: ${JSON.stringify((res as { body?: unknown }).body)}`,
      );
    }
  });
}
