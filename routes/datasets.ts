/** Datasets: a named set of images, its label vocabulary and its annotation rules. */
import { createRoute, z } from "@hono/zod-openapi";
import { notFound } from "../lib/http/errors.ts";
import { errors, jsonBody, jsonResponse } from "../lib/http/openapi.ts";
import { createRouter } from "../lib/http/router.ts";
import { secured } from "../lib/http/security.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import * as ops from "../operations/datasets.ts";
import { idParam } from "../schemas/common.ts";
import {
  CreateDataset,
  Dataset,
  datasetJson,
  DatasetStats,
  DatasetSummary,
  UpdateDataset,
} from "../schemas/datasets.ts";
import * as q from "../sql/datasets/queries.ts";
import { callerParams } from "../sql/users/queries.ts";

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
    ...errors(400, 401, 403, "dataset_exists", 413, 415),
  },
});

const listDatasetsRoute = createRoute({
  method: "get",
  path: "/datasets",
  operationId: "listDatasets",
  ...secured("admin", "reviewer", "annotator", "machine"),
  tags: ["datasets"],
  summary: "List datasets",
  responses: {
    200: jsonResponse(
      z.object({ items: z.array(Dataset) }),
      "The datasets the caller may see, oldest first",
    ),
    ...errors(401),
  },
});

const getDatasetRoute = createRoute({
  method: "get",
  path: "/datasets/{datasetId}",
  operationId: "getDataset",
  ...secured("admin", "reviewer", "annotator", "machine"),
  tags: ["datasets"],
  summary: "Get a dataset with its image count",
  request: { params: datasetParams },
  responses: {
    200: jsonResponse(DatasetSummary, "The dataset"),
    ...errors("invalid_dataset_id", 401, "dataset_not_found"),
  },
});

const updateDatasetRoute = createRoute({
  method: "patch",
  path: "/datasets/{datasetId}",
  operationId: "updateDataset",
  ...secured("admin"),
  tags: ["datasets"],
  summary: "Change a dataset's description, labels (append only), TTL, overlap or access",
  description: "Labels may only be appended: a list that drops, renames or reorders a current " +
    "label is refused with 409 `labels_append_only`. Turning `access` to `members` ends the " +
    "live claims of non-members at once.",
  request: { params: datasetParams, body: jsonBody(UpdateDataset) },
  responses: {
    200: jsonResponse(Dataset, "The updated dataset"),
    ...errors(
      "invalid_dataset_id",
      "no_dataset_change",
      "malformed_json",
      401,
      403,
      "dataset_not_found",
      "labels_append_only",
      413,
      415,
    ),
  },
});

const getDatasetStatsRoute = createRoute({
  method: "get",
  path: "/datasets/{datasetId}/stats",
  operationId: "getDatasetStats",
  ...secured("admin", "reviewer", "annotator", "machine"),
  tags: ["datasets"],
  summary: "Progress of a dataset: images by status, annotations by source, live claims",
  description: "One pass over the dataset, computed once at a time per dataset: calls that " +
    "arrive while a computation runs share the next one. Each answer counts everything " +
    "committed before its call arrived.",
  request: { params: datasetParams },
  responses: {
    200: jsonResponse(DatasetStats, "The dataset's progress"),
    ...errors("invalid_dataset_id", 401, "dataset_not_found"),
  },
});

export function datasetsRouter(deps: Deps) {
  const { db } = deps;
  return createRouter()
    .openapi(createDatasetRoute, async (c) => {
      const body = c.req.valid("json");
      const created = await ops.createDataset(deps, {
        name: body.name,
        description: body.description ?? null,
        labels: body.labels,
        annotations_per_image: body.annotations_per_image,
        claim_ttl_seconds: body.claim_ttl_seconds,
        access: body.access,
        review_rate: body.review_rate,
      });
      return c.json(datasetJson(created), 201);
    })
    .openapi(listDatasetsRoute, async (c) => {
      const rows = await q.listDatasets(db, callerParams(c.get("principal")));
      return c.json({ items: rows.map(datasetJson) }, 200);
    })
    .openapi(getDatasetRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const d = await q.getDatasetSummary(db, {
        id: datasetId,
        ...callerParams(c.get("principal")),
      });
      if (!d) throw notFound(`dataset ${datasetId}`);
      return c.json({ ...datasetJson(d), image_count: d.image_count }, 200);
    })
    .openapi(getDatasetStatsRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      return c.json(await ops.datasetStats(deps, datasetId, c.get("principal")), 200);
    })
    .openapi(updateDatasetRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const changes = c.req.valid("json");
      const updated = await ops.updateDataset(deps, datasetId, changes, c.get("principal"));
      return c.json(datasetJson(updated), 200);
    });
}
