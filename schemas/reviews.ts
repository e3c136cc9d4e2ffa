/** Reviews: leases on images waiting for review, and the decisions that end them. */
import { z } from "@hono/zod-openapi";
import type * as q from "../sql/reviews/queries.ts";
import { Annotation, annotationJson, Labels, Shapes } from "./annotations.ts";
import { Id, keywords, Text, Timestamp } from "./common.ts";
import { Image, imageJson } from "./images.ts";
import { MediaFields, type MediaJson } from "./media.ts";

export const Review = z.object({
  id: Id,
  image_id: Id,
  dataset_id: Id,
  user_id: Id.openapi({ description: "The reviewer" }),
  expires_at: Timestamp.openapi({
    description: "The review lease ends then unless renewed; submit or renew before it. A late " +
      "submit is still accepted while no other reviewer has taken the image.",
  }),
}).openapi("Review");

export const ReviewedAnnotation = Annotation.extend({
  author_name: z.string().openapi({ description: "The annotator's user name" }),
}).openapi("ReviewedAnnotation");

export const ReviewedImage = z.object({
  review: Review,
  image: Image,
  annotations: z.array(ReviewedAnnotation).openapi({
    description: "The image's current human annotations (submitted, or accepted by an earlier " +
      "review), with their authors: what this review accepts, fixes or rejects",
  }),
  predictions: z.array(Annotation).openapi({
    description: "The image's machine annotations, the latest per model",
  }),
  ...MediaFields,
}).openapi("ReviewedImage");

export const RenewedReview = Review.extend(MediaFields).openapi("RenewedReview", {
  description: "The review with its new expires_at, and fresh media",
});

export const ReviewDecision = z.enum(["accept", "fix", "reject"]).openapi({
  description: "accept: the current human annotations become accepted and the image accepted. " +
    "fix: `annotation` replaces them (they become superseded; it is stored as the reviewer's " +
    "own, accepted) and the image is accepted. reject: they become rejected, with `comment`, " +
    "and the image goes back to the annotation queue; their annotators get it back first",
});

const FixContent = z.strictObject({
  labels: Labels.optional(),
  shapes: Shapes.optional(),
  empty: z.boolean().optional().openapi({
    description: 'true for a deliberate "nothing here": required with neither labels nor shapes',
  }),
}).superRefine((a, ctx) => {
  const content = (a.labels?.length ?? 0) + (a.shapes?.length ?? 0) > 0;
  if (a.empty === true && content) {
    ctx.addIssue({ code: "custom", path: ["empty"], message: "must not be true with content" });
  } else if (!content && a.empty !== true) {
    ctx.addIssue({
      code: "custom",
      path: ["empty"],
      message: 'required: an annotation with neither labels nor shapes must say "empty": true',
    });
  }
}).openapi("ReviewFix", {
  description: 'The fixed annotation: labels, shapes, or both; or `"empty": true` and neither',
  ...keywords({
    anyOf: [
      { required: ["labels"], properties: { labels: { minItems: 1 }, empty: { const: false } } },
      { required: ["shapes"], properties: { shapes: { minItems: 1 }, empty: { const: false } } },
      {
        required: ["empty"],
        properties: { empty: { const: true }, labels: { maxItems: 0 }, shapes: { maxItems: 0 } },
      },
    ],
  }),
});

export const SubmitReview = z.strictObject({
  claim_id: Id.openapi({ description: "The review lease's id (claimNextReview's `review.id`)" }),
  decision: ReviewDecision,
  comment: Text(2000).optional().openapi({
    description: "Why: required to reject (the annotator reads it with the rework), optional " +
      "otherwise",
  }),
  annotation: FixContent.optional().openapi({
    description: "Required to fix, refused otherwise",
  }),
}).superRefine((b, ctx) => {
  if (b.decision === "reject" && b.comment === undefined) {
    ctx.addIssue({ code: "custom", path: ["comment"], message: "required to reject" });
  }
  if (b.decision === "fix" && b.annotation === undefined) {
    ctx.addIssue({ code: "custom", path: ["annotation"], message: "required to fix" });
  }
  if (b.decision !== "fix" && b.annotation !== undefined) {
    ctx.addIssue({ code: "custom", path: ["annotation"], message: "only a fix carries one" });
  }
}).openapi("SubmitReview", {
  description: "reject needs `comment`; fix needs `annotation`, which only a fix may carry",
  ...keywords({
    oneOf: [
      // `annotation: false`: the property may not be present (JSON Schema 2020-12).
      { properties: { decision: { const: "accept" }, annotation: false }, required: ["decision"] },
      { properties: { decision: { const: "fix" } }, required: ["decision", "annotation"] },
      {
        properties: { decision: { const: "reject" }, annotation: false },
        required: ["decision", "comment"],
      },
    ],
  }),
});

export const ReviewResult = z.object({
  image: Image.openapi({
    description: "The image after the decision: accepted, or (reject) " +
      "pending or in_progress again",
  }),
  author_ids: z.array(Id).openapi({
    description: "The annotators whose work the decision accepted, rejected or superseded",
  }),
  fix: Annotation.nullable().openapi({ description: "A fix's annotation (accepted)" }),
}).openapi("ReviewResult");

export function reviewJson(r: q.NewReview): z.infer<typeof Review> {
  return {
    id: r.id,
    image_id: r.image_id,
    dataset_id: r.dataset_id,
    user_id: r.user_id,
    expires_at: r.expires_at.toISOString(),
  };
}

export function reviewedImageJson(
  r: Extract<q.ReviewOutcome, { state: "held" | "new" }> & { media: MediaJson },
): z.infer<typeof ReviewedImage> {
  return {
    review: reviewJson(r.review),
    image: imageJson(r.image),
    annotations: r.annotations.map((a) => ({ ...annotationJson(a), author_name: a.author_name })),
    predictions: r.predictions.map(annotationJson),
    ...r.media,
  };
}

export function reviewResultJson(r: q.ReviewResult): z.infer<typeof ReviewResult> {
  return {
    image: imageJson(r.image),
    author_ids: r.author_ids,
    fix: r.fix && annotationJson(r.fix),
  };
}
