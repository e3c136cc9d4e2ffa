/**
 * The streamed export: JSON lines or COCO, from one database snapshot with constant memory.
 */
import type { Db } from "../lib/db/query.ts";
import { readSnapshot } from "../lib/db/snapshot.ts";
import { annotationJson } from "../schemas/annotations.ts";
import { imageJson } from "../schemas/images.ts";
import * as q from "../sql/annotations/queries.ts";
import { getDataset } from "../sql/datasets/queries.ts";
import { callerParams } from "../sql/users/queries.ts";
import { type Caller, requireDataset } from "./datasets.ts";

export type ExportFormat = "jsonl" | "coco";

/** Which images and annotations an export holds. */
export interface ExportFilter {
  /** Null: every source. */
  source: q.AnnotationSource | null;
  images: q.ExportImages;
  /** Also the rejected and superseded annotations. */
  history: boolean;
}

/**
 * The dataset's export as chunks of bytes, read lazily from one snapshot (404 before the first
 * byte for an unknown dataset, or one the caller may not see).
 */
export async function exportDataset(
  db: Db,
  datasetId: string,
  format: ExportFormat,
  filter: ExportFilter,
  caller: Caller,
): Promise<AsyncIterable<Uint8Array>> {
  await requireDataset(db, datasetId, caller);
  const who = callerParams(caller);
  return readSnapshot(db, (tx) => {
    const pass = () => q.exportAnnotations(tx, { dataset_id: datasetId, ...filter, ...who });
    if (format === "jsonl") return jsonLines(pass());
    // The categories are read in the snapshot the annotations come from (its first statement),
    // so every label an exported annotation uses is among them.
    return (async function* () {
      const dataset = await getDataset(tx, { id: datasetId, ...who });
      yield* coco(dataset?.labels ?? [], pass);
    })();
  });
}

const encoder = new TextEncoder();

async function* jsonLines(images: AsyncIterable<q.ExportedImage[]>): AsyncGenerator<Uint8Array> {
  for await (const batch of images) {
    const lines = batch.map((i) =>
      JSON.stringify({ ...imageJson(i), annotations: i.annotations.map(annotationJson) })
    );
    yield encoder.encode(lines.join("\n") + "\n");
  }
}

/** The polygon's area (shoelace formula: half the absolute signed sum). */
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
  for (const s of a.shapes) {
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
        status: a.status,
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
