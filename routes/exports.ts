/**
 * The streamed export (exportDataset): JSON lines or COCO, from one database snapshot with
 * constant memory.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { secured } from "../lib/auth/tokens.ts";
import { readSnapshot } from "../lib/db/query.ts";
import { createRouter, type Deps } from "../lib/http/router.ts";
import { errors, idParam } from "../lib/http/openapi.ts";
import * as q from "../sql/annotations/queries.ts";
import { annotationJson, type ShapeT } from "./annotations.ts";
import { getDataset } from "../sql/datasets/queries.ts";
import { requireDataset } from "./datasets.ts";
import { imageJson } from "./images.ts";

const exportDatasetRoute = createRoute({
  method: "get",
  path: "/datasets/{datasetId}/export",
  operationId: "exportDataset",
  ...secured("admin", "machine"),
  tags: ["annotations"],
  summary: "Export every image with its annotations, streamed (COCO or JSON lines)",
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
    ...errors(400, 401, 403, 404),
  },
});

// ---------------------------------------------------------------------------------------------
// Export formats

const encoder = new TextEncoder();

async function* jsonLines(images: AsyncIterable<q.ExportedImage[]>): AsyncGenerator<Uint8Array> {
  for await (const batch of images) {
    const lines = batch.map((i) =>
      JSON.stringify({ ...imageJson(i), annotations: i.annotations.map(annotationJson) })
    );
    yield encoder.encode(lines.join("\n") + "\n");
  }
}

/** Twice the polygon's signed area (shoelace), made positive. */
function polygonArea(points: [number, number][]): number {
  let twice = 0;
  for (let i = 0; i < points.length; i++) {
    const [x1, y1] = points[i];
    const [x2, y2] = points[(i + 1) % points.length];
    twice += x1 * y2 - x2 * y1;
  }
  return Math.abs(twice) / 2;
}

/**
 * The COCO annotations of one annotation: one per bbox or polygon shape (points have no COCO
 * detection form: left out), ids from `nextId` on. Ids are bigint text, written bare.
 */
function cocoAnnotations(
  a: q.Annotation,
  categories: Map<string, number>,
  nextId: number,
): string[] {
  const out: string[] = [];
  for (const s of a.shapes as ShapeT[]) {
    let geometry: { bbox: number[]; area: number; segmentation: number[][] };
    if (s.type === "bbox") {
      const [x1, y1] = [s.x + s.width, s.y + s.height];
      geometry = {
        bbox: [s.x, s.y, s.width, s.height],
        area: s.width * s.height,
        segmentation: [[s.x, s.y, x1, s.y, x1, y1, s.x, y1]],
      };
    } else if (s.type === "polygon") {
      const xs = s.points.map((p) => p[0]);
      const ys = s.points.map((p) => p[1]);
      const [x0, y0] = [Math.min(...xs), Math.min(...ys)];
      geometry = {
        bbox: [x0, y0, Math.max(...xs) - x0, Math.max(...ys) - y0],
        area: polygonArea(s.points),
        segmentation: [s.points.flat()],
      };
    } else {
      continue;
    }
    const score = s.confidence ?? a.confidence;
    const rest = JSON.stringify({
      category_id: categories.get(s.label) ?? null,
      iscrowd: 0,
      ...geometry,
      ...(score === null ? {} : { score }),
      attributes: {
        annotation_id: a.id,
        source: a.source,
        author_id: a.author_id,
        model: a.model,
        created_at: a.created_at.toISOString(),
      },
    });
    out.push(`{"id":${nextId + out.length},"image_id":${a.image_id},${rest.slice(1)}`);
  }
  return out;
}

/**
 * COCO in two passes over one snapshot: the images array, then the annotations array (COCO keeps
 * them apart, and holding either in memory would not be constant).
 */
async function* coco(
  labels: string[],
  pass: () => AsyncIterable<q.ExportedImage[]>,
): AsyncGenerator<Uint8Array> {
  const categories = new Map(labels.map((l, i) => [l, i + 1]));
  const head = {
    info: { description: "Exported by the image annotation server", date_created: new Date() },
    licenses: [],
    categories: labels.map((name, i) => ({ id: i + 1, name, supercategory: "" })),
  };
  yield encoder.encode(`${JSON.stringify(head).slice(0, -1)},"images":[`);
  let first = true;
  for await (const batch of pass()) {
    const items = batch.map((i) =>
      `{"id":${i.id},${
        JSON.stringify({
          file_name: i.uri,
          coco_url: i.uri,
          width: i.width,
          height: i.height,
          external_id: i.external_id,
        }).slice(1)
      }`
    );
    if (!items.length) continue;
    yield encoder.encode((first ? "" : ",") + items.join(","));
    first = false;
  }
  yield encoder.encode(`],"annotations":[`);
  first = true;
  let nextId = 1;
  for await (const batch of pass()) {
    const items: string[] = [];
    for (const image of batch) {
      for (const a of image.annotations) {
        const shapes = cocoAnnotations(a, categories, nextId);
        nextId += shapes.length;
        items.push(...shapes);
      }
    }
    if (!items.length) continue;
    yield encoder.encode((first ? "" : ",") + items.join(","));
    first = false;
  }
  yield encoder.encode("]}\n");
}

// ---------------------------------------------------------------------------------------------

export function exportsRouter(deps: Deps) {
  const { db } = deps;
  return createRouter()
    .openapi(exportDatasetRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const { format, source } = c.req.valid("query");
      await requireDataset(deps, datasetId); // a 404 before the stream starts
      const filter = source === "all" ? null : source;
      const chunks = readSnapshot(db, (tx) => {
        const pass = () => q.exportAnnotations(tx, datasetId, filter);
        if (format === "jsonl") return jsonLines(pass());
        // The categories are read in the snapshot the annotations come from (its first
        // statement), so every label an exported annotation uses is among them.
        return (async function* () {
          const dataset = await getDataset(tx, datasetId);
          yield* coco(dataset?.labels ?? [], pass);
        })();
      });
      const name = `dataset-${datasetId}.${format === "coco" ? "json" : "jsonl"}`;
      const res = c.body(ReadableStream.from(chunks), 200, {
        "content-type": format === "coco" ? "application/json" : "application/x-ndjson",
        "content-disposition": `attachment; filename="${name}"`,
      });
      // The spec documents the body as JSON; the typed-response check cannot know a stream is.
      return res as never;
    });
}
