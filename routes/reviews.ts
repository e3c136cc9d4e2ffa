/** Reviews: the review queue, review leases, and the decisions that end them. */
import { createRoute, z } from "@hono/zod-openapi";
import { errors, jsonBody, jsonResponse } from "../lib/http/openapi.ts";
import { createRouter } from "../lib/http/router.ts";
import { secured } from "../lib/http/security.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import { leaseOperations } from "../operations/leases.ts";
import { publicOrigin } from "../operations/media.ts";
import { reviewOperations } from "../operations/reviews.ts";
import { idParam } from "../schemas/common.ts";
import {
  RenewedReview,
  ReviewedImage,
  reviewedImageJson,
  reviewJson,
  ReviewResult,
  reviewResultJson,
  SubmitReview,
} from "../schemas/reviews.ts";

const REVIEW_PROBLEMS = [
  "review_not_yours",
  "review_not_found",
  "review_expired",
  "review_completed",
  "review_released",
  "review_revoked",
] as const;

const claimNextReviewRoute = createRoute({
  method: "post",
  path: "/datasets/{datasetId}/reviews",
  operationId: "claimNextReview",
  ...secured("admin", "reviewer"),
  tags: ["reviews"],
  summary: "Lease the next image to review",
  description: "Picks the highest-priority image waiting for review (then the one waiting " +
    "longest) that the caller did not annotate and no other reviewer holds, and leases it to the " +
    "caller for the dataset's claim_ttl_seconds. A caller that already holds a live review lease " +
    "in the dataset gets it back (200). An image waits for review when it got its " +
    "annotations_per_image-th human annotation and the dataset's review_rate selected it.",
  request: { params: z.object({ datasetId: idParam("datasetId") }) },
  responses: {
    201: jsonResponse(ReviewedImage, "A new review lease"),
    200: jsonResponse(ReviewedImage, "The live review lease the caller already holds here"),
    204: { description: "Nothing is waiting for this caller to review" },
    ...errors("invalid_dataset_id", 401, 403, "dataset_not_found"),
  },
});

const reviewParams = z.object({ reviewId: idParam("reviewId") });

const renewReviewRoute = createRoute({
  method: "post",
  path: "/reviews/{reviewId}/renew",
  operationId: "renewReview",
  ...secured("admin", "reviewer"),
  tags: ["reviews"],
  summary: "Extend a review lease by the dataset's claim_ttl_seconds from now (holder only)",
  description: "An expired review lease can still be renewed while no other reviewer has taken " +
    "the image.",
  request: { params: reviewParams },
  responses: {
    200: jsonResponse(RenewedReview, "The review with its new expires_at, and fresh media"),
    ...errors("invalid_review_id", 401, 403, ...REVIEW_PROBLEMS),
  },
});

const releaseReviewRoute = createRoute({
  method: "delete",
  path: "/reviews/{reviewId}",
  operationId: "releaseReview",
  ...secured("admin", "reviewer"),
  tags: ["reviews"],
  summary: "Give an image back to the review queue without deciding (holder, or an admin)",
  request: { params: reviewParams },
  responses: {
    204: { description: "Released" },
    ...errors("invalid_review_id", 401, 403, ...REVIEW_PROBLEMS),
  },
});

const submitReviewRoute = createRoute({
  method: "post",
  path: "/images/{imageId}/reviews",
  operationId: "submitReview",
  ...secured("admin", "reviewer"),
  tags: ["reviews"],
  summary: "Accept, fix or reject the image's annotations (ends the review lease)",
  description: "accept: the image's current human annotations become `accepted`, the image " +
    "`accepted`. fix: `annotation` is stored as the reviewer's own (accepted), the annotations " +
    "it replaces become `superseded`, the image `accepted`. reject: the annotations become " +
    "`rejected` with `comment`; the image goes back to the annotation queue (pending), its " +
    "rejected annotators may annotate it again, and for one claim TTL only they may claim it: " +
    "their next claimNextImage in the dataset returns it first, with the comment. A late submit " +
    "is accepted while no other reviewer has taken the image. A reviewer who annotated the " +
    "image cannot decide on it (409 own_annotation).",
  request: {
    params: z.object({ imageId: idParam("imageId") }),
    body: jsonBody(SubmitReview),
  },
  responses: {
    200: jsonResponse(ReviewResult, "Decided"),
    ...errors(
      "invalid_image_id",
      "invalid_body",
      "malformed_json",
      401,
      403,
      ...REVIEW_PROBLEMS,
      "review_mismatch",
      "own_annotation",
      "image_changed",
      "unknown_label",
      "out_of_bounds",
      415,
    ),
  },
});

export function reviewsRouter(deps: Deps) {
  const leases = leaseOperations(deps);
  const ops = reviewOperations(deps);
  return createRouter()
    .openapi(claimNextReviewRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const claimed = await ops.claimNext(
        datasetId,
        c.get("principal"),
        publicOrigin(deps, c.req.url),
      );
      if (!claimed) return c.body(null, 204);
      return c.json(reviewedImageJson(claimed), claimed.state === "new" ? 201 : 200);
    })
    .openapi(renewReviewRoute, async (c) => {
      const { reviewId } = c.req.valid("param");
      const renewed = await leases.renew(
        "review",
        reviewId,
        c.get("principal"),
        publicOrigin(deps, c.req.url),
      );
      return c.json({ ...reviewJson(renewed), ...renewed.media }, 200);
    })
    .openapi(releaseReviewRoute, async (c) => {
      const { reviewId } = c.req.valid("param");
      await leases.release("review", reviewId, c.get("principal"));
      return c.body(null, 204);
    })
    .openapi(submitReviewRoute, async (c) => {
      const { imageId } = c.req.valid("param");
      const result = await ops.submit(imageId, c.req.valid("json"), c.get("principal"));
      return c.json(reviewResultJson(result), 200);
    });
}
