/** Annotations: human and machine, their shapes, predictions in bulk, and the changes feed. */
import { z } from "@hono/zod-openapi";
import type * as q from "../sql/annotations/queries.ts";
import { Id, keywords, MAX_BATCH, Name, ONE_IMAGE_REF, Timestamp } from "./common.ts";

/** A pixel coordinate or length: finite and non-negative (bounds are checked against the image). */
const Coord = z.number().min(0, "must not be negative");
/** A box's side: greater than 0 (one bound only: `minimum` 0 beside it would say nothing more). */
const Length = z.number().gt(0, "must be greater than 0");
export const Label = Name(200).openapi({ example: "cat" });
export const Confidence = z.number().min(0).max(1).openapi({ example: 0.92 });

const MAX_SHAPES = 1000;
const MAX_POLYGON_POINTS = 10_000;

const BBox = z.strictObject({
  type: z.literal("bbox"),
  label: Label,
  x: Coord,
  y: Coord,
  width: Length,
  height: Length,
  confidence: Confidence.optional(),
}).openapi("BBox", { description: "An axis-aligned box; x, y is its top-left corner" });

const Polygon = z.strictObject({
  type: z.literal("polygon"),
  label: Label,
  // A tuple refuses fewer or more than two numbers; prefixItems alone would allow them.
  points: z.array(z.tuple([Coord, Coord]).openapi({ minItems: 2, maxItems: 2 })).min(
    3,
    "a polygon needs at least 3 points",
  ).max(
    MAX_POLYGON_POINTS,
    `a polygon has at most ${MAX_POLYGON_POINTS} points`,
  ),
  confidence: Confidence.optional(),
}).openapi("Polygon", { description: "A closed polygon as [x, y] points" });

const Point = z.strictObject({
  type: z.literal("point"),
  label: Label,
  x: Coord,
  y: Coord,
  confidence: Confidence.optional(),
}).openapi("Point");

export const Shape = z.discriminatedUnion("type", [BBox, Polygon, Point]).openapi("Shape");
export type ShapeT = z.infer<typeof Shape>;

export const Shapes = z.array(Shape).max(MAX_SHAPES, `at most ${MAX_SHAPES} shapes`);
export const Labels = z.array(Label).max(1000, "at most 1000 labels").openapi({
  description: "Image-level labels (classification); each must be one of the dataset's labels",
});

export const Model = z.strictObject({
  name: Name(200).openapi({ example: "yolo-v9" }),
  version: Name(200).openapi({ example: "2026-11-01" }),
}).openapi("Model");

export const Annotation = z.object({
  id: Id,
  image_id: Id,
  dataset_id: Id,
  source: z.enum(["human", "machine"]).openapi({
    description: "human for annotators and admins, machine for ML clients: from the caller's role",
  }),
  author_id: Id,
  model: z.object({ name: z.string(), version: z.string() }).nullable(),
  confidence: z.number().nullable(),
  labels: z.array(z.string()),
  shapes: z.array(Shape),
  created_at: Timestamp,
  status: z.enum(["submitted", "accepted", "rejected", "superseded"]).openapi({
    description: "submitted: current, not reviewed. accepted: current, accepted by a reviewer " +
      "(or a reviewer's fix, or an admin's correction of an accepted image). rejected: a " +
      "reviewer rejected it (review_comment says why). superseded: replaced by a reviewer's " +
      "fix, an admin's correction, its author's amendment, or (a prediction) a newer prediction " +
      "of the same model. Lists and exports show the current ones (submitted, accepted) unless " +
      "asked for the history",
  }),
  reviewed_by: Id.nullable().openapi({
    description: "Who accepted, rejected or superseded it: a reviewer, or the admin who corrected",
  }),
  reviewed_at: Timestamp.nullable(),
  review_comment: z.string().nullable(),
}).openapi("Annotation");

/**
 * An annotation says what is on the image, or says `"empty": true`: a deliberate "nothing here".
 * One with neither labels nor shapes is refused without it (a client that forgot to fill them in
 * must not mark an image done), and `"empty": true` with labels or shapes contradicts itself.
 */
function checkEmpty(
  a: { labels?: unknown[]; shapes?: unknown[]; empty?: boolean },
  ctx: z.core.$RefinementCtx,
): void {
  const content = (a.labels?.length ?? 0) + (a.shapes?.length ?? 0) > 0;
  if (a.empty === true && content) {
    ctx.addIssue({
      code: "custom",
      path: ["empty"],
      message: "must not be true with labels or shapes",
    });
  } else if (!content && a.empty !== true) {
    ctx.addIssue({
      code: "custom",
      path: ["empty"],
      message: 'required: an annotation with neither labels nor shapes must say "empty": true',
    });
  }
}

/** checkEmpty as JSON Schema: labels, or shapes, or `"empty": true` and neither. */
const EMPTY_RULE = [
  { required: ["labels"], properties: { labels: { minItems: 1 }, empty: { const: false } } },
  { required: ["shapes"], properties: { shapes: { minItems: 1 }, empty: { const: false } } },
  {
    required: ["empty"],
    properties: { empty: { const: true }, labels: { maxItems: 0 }, shapes: { maxItems: 0 } },
  },
];

const Empty = z.boolean().openapi({
  description: 'true for a deliberate "nothing here": required when there are neither labels ' +
    "nor shapes, refused with them",
});

export const CreateAnnotation = z.strictObject({
  claim_id: Id.optional().openapi({
    description: "The caller's claim on the image: required for annotators, optional for " +
      "admins (corrections), not allowed for machines (400 otherwise). Submitting completes " +
      "the claim.",
  }),
  labels: Labels.optional(),
  shapes: Shapes.optional(),
  empty: Empty.optional(),
  model: Model.optional().openapi({
    description: "Required for machines; not allowed otherwise (400)",
  }),
  confidence: Confidence.optional().openapi({ description: "Machines only (400 otherwise)" }),
  next: z.boolean().optional().openapi({
    description: "`true` (annotators and admins; 400 for machines): once the annotation is " +
      "saved, claim the caller's next image in the same dataset in the same request; the 201 " +
      "answer is then `AnnotationWithNext` instead of the `Annotation`.",
  }),
}).superRefine(checkEmpty).openapi("CreateAnnotation", {
  description: 'Labels, shapes, or both; or `"empty": true` and neither. The rules that ' +
    "depend on the caller's role (claim_id, model, confidence, next) are in each field's " +
    "description.",
  ...keywords({ anyOf: EMPTY_RULE }),
});

export const Prediction = z.strictObject({
  image_id: Id.optional(),
  external_id: Name(256).optional(),
  model: Model,
  confidence: Confidence.optional(),
  labels: Labels.optional(),
  shapes: Shapes.optional(),
  empty: Empty.optional(),
}).refine((p) => (p.image_id === undefined) !== (p.external_id === undefined), {
  message: "give exactly one of image_id and external_id",
}).superRefine(checkEmpty).openapi("Prediction", {
  description: "Names its image by exactly one of image_id and external_id; has labels, " +
    'shapes, or both, or `"empty": true` and neither',
  // Both apply: exactly one of the two ids, and content or "empty".
  oneOf: ONE_IMAGE_REF,
  ...keywords({ anyOf: EMPTY_RULE }),
});

export const CreatePredictions = z.strictObject({
  predictions: z.array(Prediction).min(1, "must contain at least 1 prediction").max(
    MAX_BATCH,
    `must contain at most ${MAX_BATCH} predictions`,
  ),
}).openapi("CreatePredictions");

export const CreatePredictionsResult = z.object({
  created: z.number().int(),
  not_found: z.array(z.object({ image_id: Id.optional(), external_id: z.string().optional() }))
    .openapi({ description: "The predictions whose image is not in this dataset, as given" }),
}).openapi("CreatePredictionsResult");

export const SourceFilter = z.enum(["human", "machine"]).optional().openapi({
  description: "Only annotations of this source",
});

export const StatusFilter = z.enum(["current", "all"]).default("current").openapi({
  description: "current: submitted and accepted annotations; all: also the rejected and " +
    "superseded ones (the history)",
});

export const AmendAnnotation = z.strictObject({
  labels: Labels.optional(),
  shapes: Shapes.optional(),
  empty: Empty.optional(),
}).superRefine(checkEmpty).openapi("AmendAnnotation", {
  description: 'The new content: labels, shapes, or both; or `"empty": true` and neither',
  ...keywords({ anyOf: EMPTY_RULE }),
});

export const FeedPage = z.object({
  items: z.array(Annotation),
  next_cursor: z.string().openapi({
    description: "Pass as `after` to continue: the position of the page's last item. A page " +
      "with no items still moves it past what the poll looked at (never past a row that can " +
      "still commit), so polling an idle feed stays cheap.",
  }),
}).openapi("AnnotationFeedPage");

export function annotationJson(a: q.Annotation): z.infer<typeof Annotation> {
  return {
    id: a.id,
    image_id: a.image_id,
    dataset_id: a.dataset_id,
    source: a.source,
    author_id: a.author_id,
    model: a.model,
    confidence: a.confidence,
    labels: a.labels,
    shapes: a.shapes as ShapeT[],
    created_at: a.created_at.toISOString(),
    status: a.status,
    reviewed_by: a.reviewed_by,
    reviewed_at: a.reviewed_at?.toISOString() ?? null,
    review_comment: a.review_comment,
  };
}
