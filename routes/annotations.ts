/**
 * Annotations: human ones (from a claim) and machine ones (predictions), and one image's list.
 * The changes feed is in feed.ts, the export in exports.ts.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { errors, jsonBody, jsonResponse } from "../lib/http/openapi.ts";
import { createRouter } from "../lib/http/router.ts";
import { secured } from "../lib/http/security.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import { annotationOperations } from "../operations/annotations.ts";
import {
  AmendAnnotation,
  Annotation,
  annotationJson,
  CreateAnnotation,
  CreatePredictions,
  CreatePredictionsResult,
  SourceFilter,
  StatusFilter,
} from "../schemas/annotations.ts";
import { claimedImageJson, CreatedAnnotation } from "../schemas/claims.ts";
import { idParam } from "../schemas/common.ts";
import { publicOrigin } from "../operations/media.ts";

const datasetParams = z.object({ datasetId: idParam("datasetId") });
const imageParams = z.object({ imageId: idParam("imageId") });

const createAnnotationRoute = createRoute({
  method: "post",
  path: "/images/{imageId}/annotations",
  operationId: "createAnnotation",
  ...secured("admin", "reviewer", "annotator", "machine"),
  tags: ["annotations"],
  summary: "Annotate an image (human with a claim, or machine with a model)",
  description: "The source is the caller's: annotators and admins make `human` annotations, " +
    "machines make `machine` ones. An annotator submits with its own claim, which completes " +
    "it; a claim that has expired is still accepted while nobody else has taken the slot. " +
    "Labels must be the dataset's; coordinates must lie inside the image when its size is known. " +
    'With `"next": true` the caller\'s next image in the dataset is claimed once the ' +
    "annotation is saved, and the answer carries both (`AnnotationWithNext`): a submit and a " +
    "claim in one round trip.",
  request: { params: imageParams, body: jsonBody(CreateAnnotation) },
  responses: {
    201: jsonResponse(
      CreatedAnnotation,
      'The annotation (`Annotation`); with `"next": true`, the annotation and the next claim ' +
        "(`AnnotationWithNext`)",
    ),
    ...errors(
      "invalid_image_id",
      "invalid_annotation",
      "claim_required",
      "malformed_json",
      401,
      "claim_not_yours",
      "image_not_found",
      "claim_not_found",
      "claim_expired",
      "claim_completed",
      "claim_released",
      "claim_mismatch",
      "image_changed",
      413,
      415,
      422,
    ),
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
    ...errors(
      "invalid_dataset_id",
      "invalid_prediction",
      "malformed_json",
      401,
      403,
      "dataset_not_found",
      "image_deleted",
      413,
      415,
      422,
    ),
  },
});

const listImageAnnotationsRoute = createRoute({
  method: "get",
  path: "/images/{imageId}/annotations",
  operationId: "listImageAnnotations",
  ...secured("admin", "reviewer", "machine"),
  tags: ["annotations"],
  summary: "An image's annotations, oldest first",
  description: "The current ones (submitted, accepted); `?status=all` adds the rejected and " +
    "superseded ones, each with who reviewed or replaced it.",
  request: {
    params: imageParams,
    query: z.object({ source: SourceFilter, status: StatusFilter }),
  },
  responses: {
    200: jsonResponse(z.object({ items: z.array(Annotation) }), "The annotations"),
    ...errors("invalid_image_id", 401, 403, "image_not_found"),
  },
});

const amendAnnotationRoute = createRoute({
  method: "put",
  path: "/annotations/{annotationId}",
  operationId: "amendAnnotation",
  ...secured("admin", "reviewer", "annotator"),
  tags: ["annotations"],
  summary: "Replace your own submitted annotation while its image is not yet reviewed",
  description: "The annotation is not edited: it becomes `superseded` and a new one (same " +
    "image, author and claim) is created with the new content and returned. Only its author " +
    "may amend it, only while it is `submitted`, and only while no reviewer holds a live " +
    "review lease on the image and the image is not accepted (409 image_in_review). Labels " +
    "and bounds are checked as createAnnotation checks them.",
  request: {
    params: z.object({ annotationId: idParam("annotationId") }),
    body: jsonBody(AmendAnnotation),
  },
  responses: {
    201: jsonResponse(Annotation, "The new annotation"),
    ...errors(
      "invalid_annotation_id",
      "invalid_annotation",
      "malformed_json",
      401,
      "annotation_not_yours",
      "annotation_not_found",
      "annotation_not_current",
      "image_in_review",
      "image_changed",
      413,
      415,
      422,
    ),
  },
});

export function annotationsRouter(deps: Deps) {
  const ops = annotationOperations(deps);
  return createRouter()
    .openapi(createAnnotationRoute, async (c) => {
      const { imageId } = c.req.valid("param");
      const body = c.req.valid("json");
      if (body.next) {
        const origin = publicOrigin(deps, c.req.url);
        const done = await ops.createAndClaimNext(imageId, body, c.get("principal"), origin);
        return c.json({
          annotation: annotationJson(done.annotation),
          next: done.next && claimedImageJson(done.next),
          ...(done.nextError ? { next_error: done.nextError } : {}),
        }, 201);
      }
      const created = await ops.create(imageId, body, c.get("principal"));
      return c.json(annotationJson(created), 201);
    })
    .openapi(createPredictionsRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const { predictions } = c.req.valid("json");
      const result = await ops.createPredictions(
        datasetId,
        // `empty` is a request's word only: what is stored is the labels and shapes (none).
        predictions.map(({ empty: _, ...p }) => ({
          ...p,
          labels: p.labels ?? [],
          shapes: p.shapes ?? [],
        })),
        c.get("principal"),
      );
      return c.json(result, 200);
    })
    .openapi(listImageAnnotationsRoute, async (c) => {
      const { imageId } = c.req.valid("param");
      const { source, status } = c.req.valid("query");
      const items = await ops.listForImage(
        imageId,
        source ?? null,
        status === "all",
        c.get("principal"),
      );
      return c.json({ items: items.map(annotationJson) }, 200);
    })
    .openapi(amendAnnotationRoute, async (c) => {
      const { annotationId } = c.req.valid("param");
      const { empty: _, ...body } = c.req.valid("json");
      const amended = await ops.amend(
        annotationId,
        { labels: body.labels ?? [], shapes: body.shapes ?? [] },
        c.get("principal"),
      );
      return c.json(annotationJson(amended), 201);
    });
}
