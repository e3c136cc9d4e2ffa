/**
 * Annotations: human ones (from a claim) and machine ones (predictions), and one image's list.
 * Whether an annotation is human or machine is decided here from the caller's role, never from
 * the request body. The changes feed is in feed.ts, the export in exports.ts.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { secured } from "../lib/auth/tokens.ts";
import { Batcher } from "../lib/db/batcher.ts";
import { ApiError, type ErrorDetail, notFound } from "../lib/http/errors.ts";
import type { Metrics } from "../lib/runtime/metrics.ts";
import { createRouter, type Deps } from "../lib/http/router.ts";
import {
  errors,
  Id,
  idParam,
  jsonBody,
  jsonResponse,
  Name,
  Timestamp,
} from "../lib/http/openapi.ts";
import * as q from "../sql/annotations/queries.ts";
import { type Claim, getClaim } from "../sql/claims/queries.ts";
import { findImageSizes, getAnnotationTarget, getImage } from "../sql/images/queries.ts";
import { requireDataset } from "./datasets.ts";
import { MAX_BATCH } from "./images.ts";

// ---------------------------------------------------------------------------------------------
// Schemas

/** A pixel coordinate or length: finite and non-negative (bounds are checked against the image). */
const Coord = z.number().min(0, "must not be negative");
const Label = Name(200).openapi({ example: "cat" });
const Confidence = z.number().min(0).max(1).openapi({ example: 0.92 });

const MAX_SHAPES = 1000;
const MAX_POLYGON_POINTS = 10_000;

const BBox = z.strictObject({
  type: z.literal("bbox"),
  label: Label,
  x: Coord,
  y: Coord,
  width: Coord.gt(0, "must be greater than 0"),
  height: Coord.gt(0, "must be greater than 0"),
  confidence: Confidence.optional(),
}).openapi("BBox", { description: "An axis-aligned box; x, y is its top-left corner" });

const Polygon = z.strictObject({
  type: z.literal("polygon"),
  label: Label,
  points: z.array(z.tuple([Coord, Coord])).min(3, "a polygon needs at least 3 points").max(
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

const Shape = z.discriminatedUnion("type", [BBox, Polygon, Point]).openapi("Shape");
export type ShapeT = z.infer<typeof Shape>;

const Shapes = z.array(Shape).max(MAX_SHAPES, `at most ${MAX_SHAPES} shapes`);
const Labels = z.array(Label).max(1000, "at most 1000 labels").openapi({
  description: "Image-level labels (classification); each must be one of the dataset's labels",
});

const Model = z.strictObject({
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
}).openapi("Annotation");

const CreateAnnotation = z.strictObject({
  claim_id: Id.optional().openapi({
    description: "The caller's claim on the image: required for annotators, optional for " +
      "admins (corrections), not allowed for machines. Submitting completes the claim.",
  }),
  labels: Labels.optional(),
  shapes: Shapes.optional(),
  model: Model.optional().openapi({ description: "Required for machines; not allowed otherwise" }),
  confidence: Confidence.optional().openapi({ description: "Machines only" }),
}).openapi("CreateAnnotation");

const Prediction = z.strictObject({
  image_id: Id.optional(),
  external_id: Name(256).optional(),
  model: Model,
  confidence: Confidence.optional(),
  labels: Labels.optional(),
  shapes: Shapes.optional(),
}).refine((p) => (p.image_id === undefined) !== (p.external_id === undefined), {
  message: "give exactly one of image_id and external_id",
}).openapi("Prediction");

const CreatePredictions = z.strictObject({
  predictions: z.array(Prediction).min(1, "must contain at least 1 prediction").max(
    MAX_BATCH,
    `must contain at most ${MAX_BATCH} predictions`,
  ),
}).openapi("CreatePredictions");

const CreatePredictionsResult = z.object({
  created: z.number().int(),
  not_found: z.array(z.object({ image_id: Id.optional(), external_id: z.string().optional() }))
    .openapi({ description: "The predictions whose image is not in this dataset, as given" }),
}).openapi("CreatePredictionsResult");

export const SourceFilter = z.enum(["human", "machine"]).optional().openapi({
  description: "Only annotations of this source",
});

// ---------------------------------------------------------------------------------------------
// Routes

const datasetParams = z.object({ datasetId: idParam("datasetId") });
const imageParams = z.object({ imageId: idParam("imageId") });

const createAnnotationRoute = createRoute({
  method: "post",
  path: "/images/{imageId}/annotations",
  operationId: "createAnnotation",
  ...secured("admin", "annotator", "machine"),
  tags: ["annotations"],
  summary: "Annotate an image (human with a claim, or machine with a model)",
  description: "The source is the caller's: annotators and admins make `human` annotations, " +
    "machines make `machine` ones. An annotator submits with its own claim, which completes " +
    "it; a claim that has expired is still accepted while nobody else has taken the slot. " +
    "Labels must be the dataset's; coordinates must lie inside the image when its size is known.",
  request: { params: imageParams, body: jsonBody(CreateAnnotation) },
  responses: {
    201: jsonResponse(Annotation, "The annotation"),
    ...errors(400, 401, 403, 404, 409, 413, 415, 422),
  },
});

const createPredictionsRoute = createRoute({
  method: "post",
  path: "/datasets/{datasetId}/predictions",
  operationId: "createPredictions",
  ...secured("admin", "machine"),
  tags: ["annotations"],
  summary: "Record up to 10,000 machine annotations in one statement",
  description: "Each prediction names its image by id or external_id. The batch is validated " +
    "as a whole (labels, shapes, bounds): one bad item rejects it and writes nothing. " +
    "Predictions whose image is not in the dataset are skipped and listed in not_found.",
  request: { params: datasetParams, body: jsonBody(CreatePredictions) },
  responses: {
    200: jsonResponse(CreatePredictionsResult, "How many were created, and what matched nothing"),
    ...errors(400, 401, 403, 404, 413, 415, 422),
  },
});

const listImageAnnotationsRoute = createRoute({
  method: "get",
  path: "/images/{imageId}/annotations",
  operationId: "listImageAnnotations",
  ...secured("admin", "machine"),
  tags: ["annotations"],
  summary: "An image's annotations, oldest first",
  request: { params: imageParams, query: z.object({ source: SourceFilter }) },
  responses: {
    200: jsonResponse(z.object({ items: z.array(Annotation) }), "The annotations"),
    ...errors(400, 401, 403, 404),
  },
});

// ---------------------------------------------------------------------------------------------
// Checks the schemas cannot make: labels against the dataset, shapes against the image size

interface Size {
  width: number | null;
  height: number | null;
}

/** Problems with labels and shapes, as details with `prefix` paths (empty when there are none). */
function checkContent(
  body: { labels?: string[]; shapes?: ShapeT[] },
  vocabulary: ReadonlySet<string>,
  size: Size,
  prefix: string,
): ErrorDetail[] {
  const problems: ErrorDetail[] = [];
  body.labels?.forEach((label, i) => {
    if (!vocabulary.has(label)) {
      problems.push({
        path: `${prefix}.labels.${i}`,
        message: `"${label}" is not a dataset label`,
      });
    }
  });
  body.shapes?.forEach((shape, i) => {
    const at = `${prefix}.shapes.${i}`;
    if (!vocabulary.has(shape.label)) {
      problems.push({ path: `${at}.label`, message: `"${shape.label}" is not a dataset label` });
    }
    const { width: w, height: h } = size;
    if (w === null && h === null) return;
    // Each known dimension on its own, as the create statements check them.
    const outside = (x: number, y: number) => (w !== null && x > w) || (h !== null && y > h);
    if (
      (shape.type === "bbox" && outside(shape.x + shape.width, shape.y + shape.height)) ||
      (shape.type === "point" && outside(shape.x, shape.y)) ||
      (shape.type === "polygon" && shape.points.some(([x, y]) => outside(x, y)))
    ) {
      problems.push({ path: at, message: `lies outside the ${w ?? "?"}x${h ?? "?"} image` });
    }
  });
  return problems;
}

function rejectContent(problems: ErrorDetail[]): void {
  if (!problems.length) return;
  const outside = problems.some((p) => p.message.startsWith("lies outside"));
  const labels = problems.some((p) => p.message.endsWith("is not a dataset label"));
  throw new ApiError(
    422,
    labels ? "unknown_label" : outside ? "out_of_bounds" : "invalid_annotation",
    `${problems[0].path}: ${problems[0].message}`,
    problems.slice(0, 50),
  );
}

/** A request-shape rule that depends on the caller's role: a 400 like any validation failure. */
export function invalid(path: string, message: string): ApiError {
  return new ApiError(400, "validation_failed", `${path}: ${message}`, [{ path, message }]);
}

/**
 * The error for a claim that `userId` could not use (renew, release or submit with): missing,
 * someone else's, ended, or expired with its slot taken by another annotator since.
 */
export function claimProblem(claim: Claim | null, claimId: string, userId: string): ApiError {
  if (!claim) return notFound(`claim ${claimId}`);
  if (claim.user_id !== userId) {
    return new ApiError(403, "claim_not_yours", `claim ${claimId} is held by another user`);
  }
  if (!claim.active) {
    const reason = claim.end_reason ?? "ended";
    return new ApiError(409, `claim_${reason}`, `claim ${claimId} has already been ${reason}`);
  }
  // Active but refused: it expired and another annotator has taken its slot since.
  return new ApiError(
    409,
    "claim_expired",
    `claim ${claimId} expired and its image has been claimed by someone else`,
  );
}

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
  };
}

export function annotationsRouter(deps: Deps & { metrics: Metrics }) {
  const { db, metrics } = deps;
  // Annotators' submits arriving while one runs go together as the next statement (never two
  // of one user or one image). What the batch refuses runs createHumanAnnotation below, which
  // refuses it again or, if things changed meanwhile, accepts it; either way as if alone.
  const batchMax = deps.config.db.batchMax;
  const submits = new Batcher({
    key: () => "",
    exclusive: (a: q.ClaimedHumanAnnotation) => [`user ${a.user_id}`, `image ${a.image_id}`],
    run: (_key, batch) => q.createHumanAnnotations(db, batch),
    maxSize: batchMax,
    maxInFlight: 1,
    lingerMs: deps.config.db.batchLingerMs,
  });
  const createHuman = async (a: q.NewHumanAnnotation) => {
    const { claim_id } = a;
    const batched = claim_id !== null && batchMax
      ? await submits.submit({ ...a, claim_id })
      : undefined;
    return batched ?? await q.createHumanAnnotation(db, a);
  };
  return createRouter()
    .openapi(createAnnotationRoute, async (c) => {
      const { imageId } = c.req.valid("param");
      const body = c.req.valid("json");
      const user = c.get("principal");
      const machine = user.role === "machine";
      if (machine) {
        if (!body.model) throw invalid("body.model", "required for a machine annotation");
        if (body.claim_id !== undefined) {
          throw invalid("body.claim_id", "machines annotate without claims");
        }
      } else {
        if (body.model) throw invalid("body.model", "only machines name a model");
        if (body.confidence !== undefined) {
          throw invalid("body.confidence", "only machine annotations carry a confidence");
        }
        if (user.role === "annotator" && body.claim_id === undefined) {
          throw invalid("body.claim_id", "required: claim the image first (claimNextImage)");
        }
      }
      const content = { labels: body.labels ?? [], shapes: body.shapes ?? [] };
      // One round trip when all is well: the statements check labels and bounds themselves, and
      // only a refusal pays for finding out why.
      const created = machine
        ? await q.createMachineAnnotation(db, {
          image_id: imageId,
          author_id: user.id,
          model: body.model!,
          confidence: body.confidence ?? null,
          ...content,
        })
        : await createHuman({
          claim_id: body.claim_id ?? null,
          image_id: imageId,
          user_id: user.id,
          ...content,
        });
      if (!created) {
        const target = await getAnnotationTarget(db, imageId);
        if (!target) throw notFound(`image ${imageId}`);
        rejectContent(checkContent(body, new Set(target.labels), target, "body"));
        if (body.claim_id === undefined) {
          // Content and image fine, yet refused: the image went away or changed meanwhile.
          throw new ApiError(409, "conflict", `image ${imageId} changed meanwhile; retry`);
        }
        const claimId = body.claim_id;
        const claim = await getClaim(db, claimId);
        if (claim && claim.user_id === user.id && claim.image_id !== imageId) {
          throw new ApiError(
            409,
            "claim_mismatch",
            `claim ${claimId} is for image ${claim.image_id}, not image ${imageId}`,
          );
        }
        throw claimProblem(claim, claimId, user.id);
      }
      metrics.annotations.inc({ source: created.source });
      return c.json(annotationJson(created), 201);
    })
    .openapi(createPredictionsRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const { predictions } = c.req.valid("json");
      const user = c.get("principal");
      const dataset = await requireDataset(deps, datasetId);
      const vocabulary = new Set(dataset.labels);
      const withShapes = predictions.filter((p) => p.shapes?.length);
      const sizes = withShapes.length
        ? await findImageSizes(
          db,
          datasetId,
          withShapes.flatMap((p) => p.image_id ?? []),
          withShapes.flatMap((p) => p.external_id ?? []),
        )
        : [];
      const byId = new Map(sizes.map((s) => [s.id, s]));
      const byExternal = new Map(sizes.map((s) => [s.external_id, s]));
      const unknown: Size = { width: null, height: null };
      rejectContent(predictions.flatMap((p, i) => {
        const size = (p.image_id !== undefined
          ? byId.get(p.image_id)
          : byExternal.get(p.external_id ?? null)) ?? unknown;
        return checkContent(p, vocabulary, size, `body.predictions.${i}`);
      }));
      const result = await q.createPredictions(
        db,
        datasetId,
        user.id,
        predictions.map((p) => ({ ...p, labels: p.labels ?? [], shapes: p.shapes ?? [] })),
      );
      metrics.annotations.inc({ source: "machine" }, result.created);
      return c.json({
        created: result.created,
        not_found: result.not_found.map((pos) => {
          const p = predictions[pos - 1];
          return p.image_id !== undefined
            ? { image_id: p.image_id }
            : { external_id: p.external_id };
        }),
      }, 200);
    })
    .openapi(listImageAnnotationsRoute, async (c) => {
      const { imageId } = c.req.valid("param");
      const { source } = c.req.valid("query");
      if (!(await getImage(db, imageId))) throw notFound(`image ${imageId}`);
      const items = await q.listImageAnnotations(db, imageId, source ?? null);
      return c.json({ items: items.map(annotationJson) }, 200);
    });
}
