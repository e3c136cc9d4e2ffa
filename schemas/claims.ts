/** Claims: leases on images that keep two annotators off the same image. */
import { z } from "@hono/zod-openapi";
import type * as q from "../sql/claims/queries.ts";
import { Annotation, annotationJson } from "./annotations.ts";
import { Id, Timestamp } from "./common.ts";
import { Image, imageJson } from "./images.ts";
import { MediaFields, type MediaJson } from "./media.ts";

export const Claim = z.object({
  id: Id,
  image_id: Id,
  dataset_id: Id,
  user_id: Id,
  expires_at: Timestamp.openapi({
    description: "The lease ends then unless renewed; submit or renew before it",
  }),
}).openapi("Claim");

export const Rework = z.object({
  comment: z.string().nullable().openapi({ description: "The reviewer's reason" }),
  reviewed_by: Id.openapi({ description: "The reviewer" }),
  reviewed_at: Timestamp,
  rejected_annotation_id: Id,
}).openapi("Rework", {
  description: "Why the image is back: a reviewer rejected its annotations (submitReview)",
});

export const ClaimedImage = z.object({
  claim: Claim,
  image: Image,
  predictions: z.array(Annotation).openapi({
    description: "The image's machine annotations, the latest per model, to pre-fill the editor",
  }),
  rework: Rework.nullable().openapi({
    description: "For an image a reviewer sent back: the reject's comment, to redo the work " +
      "by; null otherwise. The annotators whose work was rejected get the image back first: " +
      "their next claim in the dataset returns it, for one claim TTL after the reject",
  }),
  ...MediaFields,
}).openapi("ClaimedImage", {
  description: "`media.url` shows the image in a browser until at least the lease's expires_at " +
    "plus 10 minutes (at most 7 days; with temporary cloud credentials, at most until they " +
    "expire: `media.expires_at` says when)",
});

export const AnnotationWithNext = z.object({
  annotation: Annotation,
  next: ClaimedImage.nullable().openapi({
    description: "The caller's next claim in the annotation's dataset, as claimNextImage " +
      "answers it (a new lease, or the live one the caller already holds there); null when " +
      "nothing is left for the caller (claimNextImage's 204), or when claiming failed after the " +
      "annotation was saved (then `next_error` says why: claim with claimNextImage)",
  }),
  next_error: z.object({ code: z.string(), message: z.string() }).optional().openapi({
    description: "Why no claim was made after the annotation was saved (e.g. `busy`): the " +
      "annotation stands; claim again with claimNextImage",
  }),
}).openapi("AnnotationWithNext", {
  description: 'createAnnotation\'s answer to `"next": true`: the annotation, and the next claim',
});

/** createAnnotation's 201: the annotation, or with `next: true` the annotation and the next claim. */
export const CreatedAnnotation = z.union([Annotation, AnnotationWithNext]).openapi({
  description: '`Annotation` without `next`; `AnnotationWithNext` with `"next": true`',
}, { unionPreferredType: "oneOf" });

export const RenewedClaim = Claim.extend(MediaFields).openapi("RenewedClaim", {
  description: "The claim with its new expires_at, and fresh media for the new lease",
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

/** A claim with its image, the image's predictions and media, as claimNextImage answers it. */
export function claimedImageJson(
  c: {
    claim: q.NewClaim;
    image: Parameters<typeof imageJson>[0];
    predictions: q.Prediction[];
    rework: q.Rework | null;
    media: MediaJson;
  },
): z.infer<typeof ClaimedImage> {
  return {
    claim: claimJson(c.claim),
    image: imageJson(c.image),
    predictions: c.predictions.map(annotationJson),
    rework: c.rework && { ...c.rework, reviewed_at: c.rework.reviewed_at.toISOString() },
    ...c.media,
  };
}
