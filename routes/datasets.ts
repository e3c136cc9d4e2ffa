/** Datasets: a named set of images, its label vocabulary and its annotation rules. */
import { createRoute, z } from "@hono/zod-openapi";
import { secured } from "../lib/auth/tokens.ts";
import { ApiError, notFound } from "../lib/http/errors.ts";
import { createRouter, type Deps } from "../lib/http/router.ts";
import {
  errors,
  Id,
  idParam,
  jsonBody,
  jsonResponse,
  Name,
  Text,
  Timestamp,
} from "../lib/http/openapi.ts";
import * as q from "../sql/datasets/queries.ts";
import { setAnnotationsPerImage } from "../sql/images/queries.ts";
import { transaction } from "../lib/db/query.ts";

const Labels = z.array(Name(200)).min(1, "must contain at least 1 label").max(
  1000,
  "must contain at most 1000 labels",
).superRefine((labels, ctx) => {
  const seen = new Set<string>();
  labels.forEach((label, i) => {
    if (seen.has(label)) {
      ctx.addIssue({ code: "custom", path: [i], message: `duplicate label "${label}"` });
    }
    seen.add(label);
  });
}).openapi({ example: ["cat", "dog"] });

const AnnotationsPerImage = z.number().int().min(1).max(10).openapi({
  description: "How many different annotators label each image",
});
const ClaimTtl = z.number().int().min(30).max(86400).openapi({
  description: "Lease length, in seconds, of a claim on an image",
});

export const Dataset = z.object({
  id: Id,
  name: z.string(),
  description: z.string().nullable(),
  labels: z.array(z.string()),
  annotations_per_image: z.number().int(),
  claim_ttl_seconds: z.number().int(),
  created_at: Timestamp,
}).openapi("Dataset");

const DatasetSummary = Dataset.extend({ image_count: z.number().int() }).openapi(
  "DatasetSummary",
);

const CreateDataset = z.strictObject({
  name: Name(200),
  description: Text(10_000).nullable().optional(),
  labels: Labels,
  annotations_per_image: AnnotationsPerImage.default(1),
  claim_ttl_seconds: ClaimTtl.default(900),
}).openapi("CreateDataset");

const UpdateDataset = z.strictObject({
  description: Text(10_000).nullable().optional(),
  labels: Labels.optional().openapi({
    description: "The full new label list. Labels are append-only: the current list must " +
      "be its prefix, in the same order, with new labels after it. A label's position is its " +
      "COCO category id (position + 1) in exports, so ids never change.",
  }),
  annotations_per_image: AnnotationsPerImage.optional(),
  claim_ttl_seconds: ClaimTtl.optional(),
}).refine((b) => Object.keys(b).length > 0, "give at least one field to change").openapi(
  "UpdateDataset",
);

const datasetParams = z.object({ datasetId: idParam("datasetId") });

const createDatasetRoute = createRoute({
  method: "post",
  path: "/datasets",
  operationId: "createDataset",
  ...secured("admin"),
  tags: ["datasets"],
  summary: "Create a dataset",
  request: { body: jsonBody(CreateDataset) },
  responses: {
    201: jsonResponse(Dataset, "The new dataset"),
    ...errors(400, 401, 403, 409, 413, 415),
  },
});

const listDatasetsRoute = createRoute({
  method: "get",
  path: "/datasets",
  operationId: "listDatasets",
  ...secured("admin", "annotator", "machine"),
  tags: ["datasets"],
  summary: "List datasets",
  responses: {
    200: jsonResponse(z.object({ items: z.array(Dataset) }), "All datasets, oldest first"),
    ...errors(401),
  },
});

const getDatasetRoute = createRoute({
  method: "get",
  path: "/datasets/{datasetId}",
  operationId: "getDataset",
  ...secured("admin", "annotator", "machine"),
  tags: ["datasets"],
  summary: "Get a dataset with its image count",
  request: { params: datasetParams },
  responses: {
    200: jsonResponse(DatasetSummary, "The dataset"),
    ...errors(400, 401, 403, 404),
  },
});

const updateDatasetRoute = createRoute({
  method: "patch",
  path: "/datasets/{datasetId}",
  operationId: "updateDataset",
  ...secured("admin"),
  tags: ["datasets"],
  summary: "Change a dataset's description, labels (append only), TTL or overlap",
  description: "Labels may only be appended: a list that drops, renames or reorders a current " +
    "label is refused with 409 `labels_append_only`.",
  request: { params: datasetParams, body: jsonBody(UpdateDataset) },
  responses: {
    200: jsonResponse(Dataset, "The updated dataset"),
    ...errors(400, 401, 403, 404, 409, 413, 415),
  },
});

const DatasetStats = z.object({
  images: z.number().int(),
  pending: z.number().int(),
  in_progress: z.number().int().openapi({
    description: "Images whose remaining slots are all under live claims",
  }),
  done: z.number().int().openapi({ description: "Images with annotations_per_image human ones" }),
  human_annotations: z.number().int(),
  machine_annotations: z.number().int(),
  active_claims: z.number().int().openapi({ description: "Live (unexpired) claims" }),
  annotators: z.array(z.object({ user_id: Id, annotations: z.number().int() })).openapi({
    description: "Human annotations per user, most first",
  }),
}).openapi("DatasetStats");

const getDatasetStatsRoute = createRoute({
  method: "get",
  path: "/datasets/{datasetId}/stats",
  operationId: "getDatasetStats",
  ...secured("admin", "annotator", "machine"),
  tags: ["datasets"],
  summary: "Progress of a dataset: images by status, annotations by source, live claims",
  request: { params: datasetParams },
  responses: {
    200: jsonResponse(DatasetStats, "The dataset's progress"),
    ...errors(400, 401, 403, 404),
  },
});

export function datasetJson(d: q.Dataset): z.infer<typeof Dataset> {
  return {
    id: d.id,
    name: d.name,
    description: d.description,
    labels: d.labels,
    annotations_per_image: d.annotations_per_image,
    claim_ttl_seconds: d.claim_ttl_seconds,
    created_at: d.created_at.toISOString(),
  };
}

/**
 * Why `next` is not `current` with labels appended (updateDataset refused it): the labels it
 * drops, or else the first position where it differs.
 */
function labelsNotAppended(current: string[], next: string[]): ApiError {
  const code = "labels_append_only";
  const dropped = current.filter((l) => !next.includes(l));
  if (dropped.length) {
    return new ApiError(
      409,
      code,
      `labels may only be appended; the new list drops ${dropped.map((l) => `"${l}"`).join(", ")}`,
      dropped.map((l) => ({ path: "body.labels", message: `missing existing label "${l}"` })),
    );
  }
  const at = current.findIndex((l, i) => next[i] !== l);
  if (at < 0) {
    // It is a prefix now: the labels changed between the update and this look.
    return new ApiError(409, "conflict", "the dataset's labels changed meanwhile; retry");
  }
  return new ApiError(
    409,
    code,
    `labels may only be appended, keeping their order (a label's position is its COCO ` +
      `category id): body.labels.${at} is "${next[at]}" but must be "${current[at]}"`,
    [{ path: `body.labels.${at}`, message: `must be "${current[at]}", as now` }],
  );
}

/** The dataset or a 404. */
export async function requireDataset(deps: Deps, id: string): Promise<q.Dataset> {
  const dataset = await q.getDataset(deps.db, id);
  if (!dataset) throw notFound(`dataset ${id}`);
  return dataset;
}

export function datasetsRouter(deps: Deps) {
  const { db } = deps;
  return createRouter()
    .openapi(createDatasetRoute, async (c) => {
      const body = c.req.valid("json");
      const created = await q.createDataset(db, {
        name: body.name,
        description: body.description ?? null,
        labels: body.labels,
        annotations_per_image: body.annotations_per_image,
        claim_ttl_seconds: body.claim_ttl_seconds,
      });
      if (!created) {
        throw new ApiError(409, "dataset_exists", `a dataset named "${body.name}" already exists`);
      }
      return c.json(datasetJson(created), 201);
    })
    .openapi(listDatasetsRoute, async (c) => {
      const rows = await q.listDatasets(db);
      return c.json({ items: rows.map(datasetJson) }, 200);
    })
    .openapi(getDatasetRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const d = await q.getDatasetSummary(db, datasetId);
      if (!d) throw notFound(`dataset ${datasetId}`);
      return c.json({ ...datasetJson(d), image_count: d.image_count }, 200);
    })
    .openapi(getDatasetStatsRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const stats = await q.getDatasetStats(db, datasetId);
      if (!stats) throw notFound(`dataset ${datasetId}`);
      return c.json(stats, 200);
    })
    .openapi(updateDatasetRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const body = c.req.valid("json");
      const k = body.annotations_per_image;
      // A new k reaches every image of the dataset in the same transaction (claims and submits
      // decide on the k of the image row they lock).
      const updated = k === undefined
        ? await q.updateDataset(db, datasetId, body)
        : await transaction(db, async (tx) => {
          const d = await q.updateDataset(tx, datasetId, body);
          if (d) await setAnnotationsPerImage(tx, datasetId, k);
          return d;
        });
      if (updated) return c.json(datasetJson(updated), 200);
      const current = await requireDataset(deps, datasetId);
      throw labelsNotAppended(current.labels, body.labels ?? current.labels);
    });
}
