/** The streamed export (exportDataset): JSON lines or COCO. */
import { createRoute, z } from "@hono/zod-openapi";
import { errors } from "../lib/http/openapi.ts";
import { createRouter } from "../lib/http/router.ts";
import { secured } from "../lib/http/security.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import { exportDataset } from "../operations/exports.ts";
import { idParam } from "../schemas/common.ts";

const exportDatasetRoute = createRoute({
  method: "get",
  path: "/datasets/{datasetId}/export",
  operationId: "exportDataset",
  ...secured("admin", "machine"),
  tags: ["annotations"],
  summary: "Export the labelled (or accepted, or all) images with their annotations, streamed " +
    "(COCO or JSON lines)",
  description: "Streamed from one database snapshot through a cursor: memory stays constant " +
    "however large the dataset.\n\n" +
    "`jsonl`: one line per image, the image with all its annotations (every shape type and " +
    "the image-level labels).\n\n" +
    "`coco`: COCO object-detection JSON. `categories` are the dataset's labels, id = position " +
    "+ 1; labels are append-only, so a label's id never changes between exports. Image ids " +
    "are the server's image ids; `width` and `height` are null for an image registered " +
    "without a size. Each bbox or polygon shape is one COCO annotation: `bbox` [x, y, width, " +
    "height], `segmentation` one polygon as a flat [x1, y1, x2, y2, ...] list (a box's four " +
    "corners for a bbox), `area` (width x height, or the polygon's shoelace area), `iscrowd` " +
    "0, `score` when there is a confidence. COCO annotation ids are numbered 1, 2, ... within " +
    "each export (one per shape), so they are not stable between exports: the server's " +
    "annotation id is `attributes.annotation_id`, with its source, author, model and " +
    "creation time. Point shapes and image-level labels have no COCO detection form and are " +
    "left out: use jsonl for them.",
  request: {
    params: z.object({ datasetId: idParam("datasetId") }),
    query: z.object({
      format: z.enum(["jsonl", "coco"]).default("jsonl"),
      source: z.enum(["human", "machine", "all"]).default("all"),
      status: z.enum(["accepted", "labeled", "all"]).default("labeled").openapi({
        description: "Which images: `labeled` (the default) those with at least one current " +
          "human annotation (an image nobody labelled yet is not exported as empty, which a " +
          "trainer would read as a negative); `accepted` those a reviewer accepted or fixed; " +
          "`all` every image",
      }),
      history: z.enum(["true", "false"]).default("false").openapi({
        description: "true: also the rejected and superseded annotations (each with its " +
          "`status`); otherwise only the current ones (submitted, accepted)",
      }),
    }),
  },
  responses: {
    200: {
      description: "The export",
      content: {
        "application/x-ndjson": { schema: z.string() },
        "application/json": { schema: z.object({}).passthrough() },
      },
    },
    ...errors("invalid_dataset_id", "invalid_format", 401, 403, "dataset_not_found"),
  },
});

export function exportsRouter(deps: Deps) {
  return createRouter()
    .openapi(exportDatasetRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const { format, source, status, history } = c.req.valid("query");
      const chunks = await exportDataset(deps.db, datasetId, format, {
        source: source === "all" ? null : source,
        images: status,
        history: history === "true",
      }, c.get("principal"));
      const name = `dataset-${datasetId}.${format === "coco" ? "json" : "jsonl"}`;
      const res = c.body(ReadableStream.from(chunks), 200, {
        "content-type": format === "coco" ? "application/json" : "application/x-ndjson",
        "content-disposition": `attachment; filename="${name}"`,
      });
      // The spec documents the body as JSON; the typed-response check cannot know a stream is.
      return res as never;
    });
}
