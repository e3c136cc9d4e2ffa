/** Claims: leases on images that keep two annotators off the same image. */
import { createRoute, z } from "@hono/zod-openapi";
import { secured } from "../lib/auth/tokens.ts";
import { Batcher } from "../lib/db/batcher.ts";
import { ApiError } from "../lib/http/errors.ts";
import type { Metrics } from "../lib/runtime/metrics.ts";
import { createRouter, type Deps } from "../lib/http/router.ts";
import { errors, Id, idParam, jsonResponse, Timestamp } from "../lib/http/openapi.ts";
import * as q from "../sql/claims/queries.ts";
import { requireDataset } from "./datasets.ts";
import { Annotation, annotationJson, claimProblem } from "./annotations.ts";
import { Image, imageJson } from "./images.ts";

export const Claim = z.object({
  id: Id,
  image_id: Id,
  dataset_id: Id,
  user_id: Id,
  expires_at: Timestamp.openapi({
    description: "The lease ends then unless renewed; submit or renew before it",
  }),
}).openapi("Claim");

const ClaimedImage = z.object({
  claim: Claim,
  image: Image,
  predictions: z.array(Annotation).openapi({
    description: "The image's machine annotations, the latest per model, to pre-fill the editor",
  }),
}).openapi("ClaimedImage");

const claimNextImageRoute = createRoute({
  method: "post",
  path: "/datasets/{datasetId}/claims",
  operationId: "claimNextImage",
  ...secured("admin", "annotator"),
  tags: ["claims"],
  summary: "Lease the next image to annotate",
  description: "Picks the highest-priority image (then the oldest) that still needs a human " +
    "annotation, that the caller has not annotated and whose remaining slots are not all under " +
    "live leases, and leases it to the caller for the dataset's claim_ttl_seconds. A caller that " +
    "already holds a live claim in the dataset gets that same claim back (200), so retries and " +
    "double clicks never take a second image. Leases expire on their own: no job is needed.",
  request: { params: z.object({ datasetId: idParam("datasetId") }) },
  responses: {
    201: jsonResponse(ClaimedImage, "A new lease"),
    200: jsonResponse(ClaimedImage, "The live lease the caller already holds in this dataset"),
    204: { description: "Nothing is left for this caller to annotate" },
    ...errors(400, 401, 403, 404),
  },
});

const claimParams = z.object({ claimId: idParam("claimId") });

const renewClaimRoute = createRoute({
  method: "post",
  path: "/claims/{claimId}/renew",
  operationId: "renewClaim",
  ...secured("admin", "annotator"),
  tags: ["claims"],
  summary: "Extend a lease by the dataset's claim_ttl_seconds from now (holder only)",
  description: "An expired lease can still be renewed while nobody else has taken its slot.",
  request: { params: claimParams },
  responses: {
    200: jsonResponse(Claim, "The claim with its new expires_at"),
    ...errors(400, 401, 403, 404, 409),
  },
});

const releaseClaimRoute = createRoute({
  method: "delete",
  path: "/claims/{claimId}",
  operationId: "releaseClaim",
  ...secured("admin", "annotator"),
  tags: ["claims"],
  summary: "Give an image back without annotating it (holder, or an admin)",
  description: "The image is claimable again at once.",
  request: { params: claimParams },
  responses: { 204: { description: "Released" }, ...errors(400, 401, 403, 404, 409) },
});

export function claimJson(c: q.NewClaim): z.infer<typeof Claim> {
  return {
    id: c.id,
    image_id: c.image_id,
    dataset_id: c.dataset_id,
    user_id: c.user_id,
    expires_at: c.expires_at.toISOString(),
  };
}

/**
 * How often a claim is tried before the answer is 503 busy, and the pause before each retry.
 * A retry follows a lost race with the same user's concurrent first claim ('conflict': the next
 * try answers held), or an empty answer while claimable images exist but were all locked at
 * that instant by other statements (claims and submits in flight, a setPriorities batch).
 */
const CLAIM_RETRY_MS = [0, 2, 10, 25, 50, 100];

export function claimsRouter(deps: Deps & { metrics: Metrics }) {
  const { db, metrics } = deps;
  // Claims of one dataset arriving while one runs go together as the next statement (one per
  // user: a user's second concurrent claim waits for the next). What the batch leaves
  // undecided runs claimNextImage below.
  const batchMax = deps.config.db.batchMax;
  const claims = new Batcher({
    key: (claim: { datasetId: string; userId: string }) => claim.datasetId,
    exclusive: (claim) => [claim.userId],
    run: (datasetId, batch) => q.claimNextImages(db, datasetId, batch.map((b) => b.userId)),
    maxSize: batchMax,
    maxInFlight: 1,
    lingerMs: deps.config.db.batchLingerMs,
  });
  return createRouter()
    .openapi(claimNextImageRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const user = c.get("principal");
      for (const pause of CLAIM_RETRY_MS) {
        if (pause) await new Promise((resolve) => setTimeout(resolve, pause));
        const outcome =
          (!pause && batchMax ? await claims.submit({ datasetId, userId: user.id }) : undefined) ??
            await q.claimNextImage(db, datasetId, user.id);
        if (!outcome) {
          // Nothing claimable, all of it locked, or no such dataset: only the rare empty
          // answer pays for telling which.
          if (await q.findClaimableImage(db, datasetId, user.id)) continue;
          await requireDataset(deps, datasetId);
          return c.body(null, 204);
        }
        if (outcome.state === "conflict") continue;
        if (outcome.state === "new") metrics.claims.inc();
        return c.json({
          claim: claimJson(outcome.claim),
          image: imageJson(outcome.image),
          predictions: outcome.predictions.map(annotationJson),
        }, outcome.state === "new" ? 201 : 200);
      }
      throw new ApiError(
        503,
        "busy",
        "the claimable images stayed locked by other requests (or concurrent claims by this " +
          "user kept conflicting); retry",
      );
    })
    .openapi(renewClaimRoute, async (c) => {
      const { claimId } = c.req.valid("param");
      const user = c.get("principal");
      const renewed = await q.renewClaim(db, claimId, user.id);
      if (!renewed) throw claimProblem(await q.getClaim(db, claimId), claimId, user.id);
      return c.json(claimJson(renewed), 200);
    })
    .openapi(releaseClaimRoute, async (c) => {
      const { claimId } = c.req.valid("param");
      const user = c.get("principal");
      // An admin may release anyone's claim: released as its holder, found first.
      const holder = user.role === "admin"
        ? (await q.getClaim(db, claimId))?.user_id ?? user.id
        : user.id;
      const released = await q.releaseClaim(db, claimId, holder);
      if (released) return c.body(null, 204);
      throw claimProblem(await q.getClaim(db, claimId), claimId, holder);
    });
}
