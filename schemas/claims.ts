/** Claims: leases on images that keep two annotators off the same image. */
import { z } from "@hono/zod-openapi";
import type * as q from "../sql/claims/queries.ts";
import { Annotation, annotationJson } from "./annotations.ts";
import { Id, Timestamp } from "./common.ts";
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

export const ClaimedImage = z.object({
  claim: Claim,
  image: Image,
  predictions: z.array(Annotation).openapi({
    description: "The image's machine annotations, the latest per model, to pre-fill the editor",
  }),
}).openapi("ClaimedImage");

export function claimJson(c: q.NewClaim): z.infer<typeof Claim> {
  return {
    id: c.id,
    image_id: c.image_id,
    dataset_id: c.dataset_id,
    user_id: c.user_id,
    expires_at: c.expires_at.toISOString(),
  };
}

/** A claim with its image and the image's predictions, as claimNextImage answers it. */
export function claimedImageJson(
  c: { claim: q.NewClaim; image: Parameters<typeof imageJson>[0]; predictions: q.Prediction[] },
): z.infer<typeof ClaimedImage> {
  return {
    claim: claimJson(c.claim),
    image: imageJson(c.image),
    predictions: c.predictions.map(annotationJson),
  };
}
