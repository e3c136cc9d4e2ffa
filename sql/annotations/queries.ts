/** Typed functions for the statements in this folder: one per file. */
import { many, one, stream } from "../../lib/db/query.ts";
import type { Handle } from "../../lib/db/pool.ts";
import { statement } from "../../lib/db/statement.ts";
import type { Image } from "../images/queries.ts";
import type { CallerParams, Role } from "../users/queries.ts";

export type AnnotationSource = "human" | "machine";

/**
 * submitted and accepted are current; rejected and superseded are history (the migration
 * 20261206040446_review_workflow.sql says what each means).
 */
export const ANNOTATION_STATUSES = ["submitted", "accepted", "rejected", "superseded"] as const;
export type AnnotationStatus = typeof ANNOTATION_STATUSES[number];
export const CURRENT_STATUSES: AnnotationStatus[] = ["submitted", "accepted"];

/** A shape as stored (jsonb). Shapes are validated by schemas/annotations.ts, not here. */
export type Shape =
  | {
    type: "bbox";
    label: string;
    x: number;
    y: number;
    width: number;
    height: number;
    confidence?: number;
  }
  | { type: "polygon"; label: string; points: [number, number][]; confidence?: number }
  | { type: "point"; label: string; x: number; y: number; confidence?: number };

export interface Model {
  name: string;
  version: string;
}

export interface Annotation {
  id: string;
  image_id: string;
  dataset_id: string;
  source: AnnotationSource;
  author_id: string;
  /** The predicting model; null for human annotations. */
  model: Model | null;
  confidence: number | null;
  labels: string[];
  shapes: Shape[];
  created_at: Date;
  status: AnnotationStatus;
  /** Who accepted, rejected or superseded it (a reviewer, or an admin's correction). */
  reviewed_by: string | null;
  reviewed_at: Date | null;
  review_comment: string | null;
}

/** An annotation as the statements return it: the model in two columns. */
export interface AnnotationRow extends Omit<Annotation, "model"> {
  model_name: string | null;
  model_version: string | null;
}

function toAnnotation(row: AnnotationRow): Annotation {
  const { model_name, model_version, ...rest } = row;
  return {
    ...rest,
    model: model_name === null ? null : { name: model_name, version: model_version! },
  };
}

/** An annotation as a statement builds it in JSON (jsonb_agg, to_jsonb): timestamps as text. */
export type AnnotationJsonRow = Omit<AnnotationRow, "created_at" | "reviewed_at"> & {
  created_at: string;
  reviewed_at: string | null;
};

export function annotationFromJson(row: AnnotationJsonRow): Annotation {
  return toAnnotation({
    ...row,
    created_at: new Date(row.created_at),
    reviewed_at: row.reviewed_at === null ? null : new Date(row.reviewed_at),
  });
}

/**
 * What the create statements check an annotation's content against, so a valid one is written
 * in one round trip: every label it uses (image-level and shapes') must be a dataset label, and
 * its right- and bottom-most coordinates must lie inside the image when the size is known. A
 * refused annotation is diagnosed in detail by the caller; these only decide.
 */
export interface ContentBounds {
  labels: string[];
  maxX: number;
  maxY: number;
}

/** The labels and extent of an annotation's content. */
export function contentBounds(labels: string[], shapes: Shape[]): ContentBounds {
  const used = new Set(labels);
  let maxX = 0;
  let maxY = 0;
  for (const s of shapes) {
    used.add(s.label);
    if (s.type === "bbox") {
      maxX = Math.max(maxX, s.x + s.width);
      maxY = Math.max(maxY, s.y + s.height);
    } else if (s.type === "point") {
      maxX = Math.max(maxX, s.x);
      maxY = Math.max(maxY, s.y);
    } else {
      for (const [x, y] of s.points) {
        maxX = Math.max(maxX, x);
        maxY = Math.max(maxY, y);
      }
    }
  }
  return { labels: [...used], maxX, maxY };
}

/** The content a create statement checks: every label used, and the extent of the shapes. */
interface ContentParams {
  used_labels: string[];
  max_x: number;
  max_y: number;
}

function contentParams(labels: string[], shapes: Shape[]): ContentParams {
  const b = contentBounds(labels, shapes);
  return { used_labels: b.labels, max_x: b.maxX, max_y: b.maxY };
}

export interface NewHumanAnnotation {
  /** The annotator's claim on the image; null only for an admin's correction. */
  claim_id: string | null;
  image_id: string;
  /** The author, who is the caller, and its role (may_see_dataset). */
  user_id: string;
  caller_role: Role;
  labels: string[];
  shapes: Shape[];
}

export type CreateHumanAnnotationParams = NewHumanAnnotation & ContentParams;
const CREATE_HUMAN_ANNOTATION = statement<CreateHumanAnnotationParams, AnnotationRow>(
  "annotations/create_human_annotation",
);

/**
 * Records a human annotation and completes its claim. `null`: the content does not fit the
 * dataset or image (see ContentBounds), the claim is not an active claim of this user on this
 * image, the image is missing (or its dataset one the user may not see), or (claim expired)
 * someone else took the slot. Look the image and the claim up (getAnnotationTarget, getLease) to
 * tell these apart.
 */
export async function createHumanAnnotation(
  db: Handle,
  a: NewHumanAnnotation,
): Promise<Annotation | null> {
  const row = await one(db, CREATE_HUMAN_ANNOTATION, {
    ...a,
    ...contentParams(a.labels, a.shapes),
  });
  return row && toAnnotation(row);
}

/** A human annotation made with a claim, as createHumanAnnotations takes it. */
export type ClaimedHumanAnnotation = NewHumanAnnotation & { claim_id: string };

/** A submit as create_human_annotations.sql reads it from its JSON array. */
interface SubmitJson {
  claim_id: string;
  image_id: string;
  user_id: string;
  /** The user's role. */
  role: Role;
  labels: string[];
  shapes: Shape[];
  used: string[];
  max_x: number;
  max_y: number;
}

export interface CreateHumanAnnotationsParams {
  /** One object per submit: the annotation with its content bounds (`used`, max_x, max_y). */
  submits: SubmitJson[];
}
const CREATE_HUMAN_ANNOTATIONS = statement<CreateHumanAnnotationsParams, AnnotationRow>(
  "annotations/create_human_annotations",
);

/**
 * createHumanAnnotation for several submits in one statement (lib/db/batcher.ts gathers them): no
 * two may have the same user or the same image. Per submit, in order: its annotation, or
 * `undefined` where createHumanAnnotation would answer `null` (run it alone to learn why).
 */
export async function createHumanAnnotations(
  db: Handle,
  items: readonly ClaimedHumanAnnotation[],
): Promise<(Annotation | undefined)[]> {
  const rows = await many(db, CREATE_HUMAN_ANNOTATIONS, {
    submits: items.map((a) => {
      const c = contentParams(a.labels, a.shapes);
      return {
        claim_id: a.claim_id,
        image_id: a.image_id,
        user_id: a.user_id,
        role: a.caller_role,
        labels: a.labels,
        shapes: a.shapes,
        used: c.used_labels,
        max_x: c.max_x,
        max_y: c.max_y,
      };
    }),
  });
  const byImage = new Map(rows.map((r) => [r.image_id, r]));
  return items.map((a) => {
    const row = byImage.get(a.image_id);
    return row && toAnnotation(row);
  });
}

export interface NewMachineAnnotation {
  image_id: string;
  /** The author, who is the caller, and its role (may_see_dataset). */
  author_id: string;
  caller_role: Role;
  model: Model;
  confidence: number | null;
  labels: string[];
  shapes: Shape[];
}

export interface CreateMachineAnnotationParams extends ContentParams {
  image_id: string;
  author_id: string;
  caller_role: Role;
  model_name: string;
  model_version: string;
  confidence: number | null;
  labels: string[];
  shapes: Shape[];
}
const CREATE_MACHINE_ANNOTATION = statement<CreateMachineAnnotationParams, AnnotationRow>(
  "annotations/create_machine_annotation",
);

/**
 * `null` when the image is missing (or its dataset one the author may not see) or the content does
 * not fit it (see ContentBounds).
 */
export async function createMachineAnnotation(
  db: Handle,
  a: NewMachineAnnotation,
): Promise<Annotation | null> {
  const row = await one(db, CREATE_MACHINE_ANNOTATION, {
    image_id: a.image_id,
    author_id: a.author_id,
    caller_role: a.caller_role,
    model_name: a.model.name,
    model_version: a.model.version,
    confidence: a.confidence,
    labels: a.labels,
    shapes: a.shapes,
    ...contentParams(a.labels, a.shapes),
  });
  return row && toAnnotation(row);
}

export interface NewPrediction {
  /** The image, by id or by external_id within the dataset. */
  image_id?: string;
  external_id?: string;
  model: Model;
  confidence?: number | null;
  labels: string[];
  shapes: Shape[];
}

export interface CreatePredictionsParams {
  dataset_id: string;
  author_id: string;
  /** The author's role (may_see_dataset). */
  caller_role: Role;
  image_ids: (string | null)[];
  external_ids: (string | null)[];
  model_names: string[];
  model_versions: string[];
  confidences: (number | null)[];
  /** Per prediction, its labels as JSON text (PostgreSQL arrays cannot be ragged). */
  labels: string[];
  /** Per prediction, its shapes as JSON text. */
  shapes: string[];
}
export interface CreatePredictionsRow {
  created: number;
  /** 1-based positions of the predictions whose image is not in the dataset. */
  not_found: number[];
}
const CREATE_PREDICTIONS = statement<CreatePredictionsParams, CreatePredictionsRow>(
  "annotations/create_predictions",
);

/**
 * Up to 10,000 predictions in one statement. `null`, having written nothing, when the dataset is
 * missing or the author may not see it.
 */
export function createPredictions(
  db: Handle,
  datasetId: string,
  author: { id: string; role: Role },
  predictions: NewPrediction[],
): Promise<CreatePredictionsRow | null> {
  return one(db, CREATE_PREDICTIONS, {
    dataset_id: datasetId,
    author_id: author.id,
    caller_role: author.role,
    image_ids: predictions.map((p) => p.image_id ?? null),
    external_ids: predictions.map((p) => p.external_id ?? null),
    model_names: predictions.map((p) => p.model.name),
    model_versions: predictions.map((p) => p.model.version),
    confidences: predictions.map((p) => p.confidence ?? null),
    labels: predictions.map((p) => JSON.stringify(p.labels)),
    shapes: predictions.map((p) => JSON.stringify(p.shapes)),
  });
}

export interface ListImageAnnotationsParams extends CallerParams {
  image_id: string;
  /** Null: every source. */
  source: AnnotationSource | null;
  /** The statuses to list: CURRENT_STATUSES unless given (all of them for the history). */
  statuses?: AnnotationStatus[];
}
const LIST_IMAGE_ANNOTATIONS = statement<Required<ListImageAnnotationsParams>, AnnotationRow>(
  "annotations/list_image_annotations",
);

/**
 * The image's annotations in id order, optionally only one source; none when the caller may not
 * see its dataset.
 */
export async function listImageAnnotations(
  db: Handle,
  p: ListImageAnnotationsParams,
): Promise<Annotation[]> {
  return (await many(db, LIST_IMAGE_ANNOTATIONS, {
    ...p,
    statuses: p.statuses ?? CURRENT_STATUSES,
  }))
    .map(toAnnotation);
}

/** A position in a dataset's changes feed: the last row delivered. */
export interface FeedCursor {
  /** The writing transaction's id (xid8), as a decimal string. */
  txid: string;
  id: string;
}

/**
 * The form of a cursor: `<txid>.<id>`, decimal. At most 19 digits of txid (below 2^64, xid8's
 * range) and 18 of id (below 2^63, bigint's; ids never reach 10^18), so every string of this
 * form is a position the statements can take; the API checks it as the `after` parameter's
 * pattern, which the OpenAPI document carries.
 */
export const FEED_CURSOR = /^([0-9]{1,19})\.([0-9]{1,18})$/;

/** The opaque cursor string handed to clients: `<txid>.<id>`. */
export function encodeFeedCursor(c: FeedCursor): string {
  return `${c.txid}.${c.id}`;
}

/** `null` unless `s` has the form of a cursor (FEED_CURSOR). */
export function decodeFeedCursor(s: string): FeedCursor | null {
  const m = FEED_CURSOR.exec(s);
  if (!m) return null;
  return { txid: BigInt(m[1]).toString(), id: BigInt(m[2]).toString() };
}

export interface FeedPage {
  items: Annotation[];
  /**
   * Pass as `after` to continue: the last row of a page with rows; on an empty page a point
   * every row still to come lies after, so the next poll does not read again what this one
   * passed over (never before `after`).
   */
  next_cursor: string;
}

function compareCursors(a: FeedCursor, b: FeedCursor): number {
  const [at, bt] = [BigInt(a.txid), BigInt(b.txid)];
  if (at !== bt) return at < bt ? -1 : 1;
  const [ai, bi] = [BigInt(a.id), BigInt(b.id)];
  return ai === bi ? 0 : ai < bi ? -1 : 1;
}

export interface ListDatasetAnnotationsParams extends CallerParams {
  dataset_id: string;
  /** The sources to read: one, or both. */
  sources: AnnotationSource[];
  /** The cursor: the last row delivered ("0", "0" at the start). */
  after_txid: string;
  after_id: string;
  limit: number;
}
/** A feed row; the annotation columns are null in the one row of a page with nothing due. */
export type FeedRow = AnnotationRow & { txid: string; horizon: string };
const LIST_DATASET_ANNOTATIONS = statement<ListDatasetAnnotationsParams, FeedRow>(
  "annotations/list_dataset_annotations",
);

/**
 * The dataset's annotations after `after` (oldest first), at most `limit`; `source` null gives
 * every source. Polling with the returned next_cursor never misses a row, even one whose
 * transaction commits after rows that were already delivered: see list_dataset_annotations.sql.
 * `null` when the dataset is missing or the caller may not see it.
 */
export async function listDatasetAnnotations(
  db: Handle,
  datasetId: string,
  opts: { source: AnnotationSource | null; after: FeedCursor | null; limit: number },
  caller: CallerParams,
): Promise<FeedPage | null> {
  const rows = await many(db, LIST_DATASET_ANNOTATIONS, {
    dataset_id: datasetId,
    sources: opts.source === null ? ["human", "machine"] : [opts.source],
    after_txid: opts.after?.txid ?? "0",
    after_id: opts.after?.id ?? "0",
    limit: opts.limit,
    caller_id: caller.caller_id,
    caller_role: caller.caller_role,
  });
  if (!rows.length) return null;
  const found = rows.filter((r) => r.id !== null);
  const last = found.at(-1);
  let next: FeedCursor;
  if (last) next = { txid: last.txid, id: last.id };
  else {
    // Nothing due: every row that can still appear has txid >= horizon; ids start at 1.
    const horizon = { txid: rows[0].horizon, id: "0" };
    next = opts.after && compareCursors(opts.after, horizon) > 0 ? opts.after : horizon;
  }
  return {
    items: found.map(({ txid: _, horizon: _h, ...row }) => toAnnotation(row)),
    next_cursor: encodeFeedCursor(next),
  };
}

export interface ExportedImage extends Image {
  annotations: Annotation[];
}

/** Which images an export holds: accepted ones, those with a current human annotation, or all. */
export type ExportImages = "accepted" | "labeled" | "all";

export interface ExportAnnotationsParams extends CallerParams {
  dataset_id: string;
  /** Null: every source. */
  source: AnnotationSource | null;
  /** Every image unless given. */
  images?: ExportImages;
  /** Also the rejected and superseded annotations (not unless given). */
  history?: boolean;
}
type ExportAnnotationsRow = Omit<ExportedImage, "annotations"> & {
  annotations: AnnotationJsonRow[];
};
const EXPORT_ANNOTATIONS = statement<Required<ExportAnnotationsParams>, ExportAnnotationsRow>(
  "annotations/export_annotations",
);

/**
 * Every image of the dataset in id order with its annotations (`source` null: all), in batches
 * of `batchSize` read through a server-side cursor: constant memory however big the dataset.
 * Nothing when the caller may not see the dataset.
 */
export async function* exportAnnotations(
  db: Handle,
  p: ExportAnnotationsParams,
  batchSize = 500,
): AsyncGenerator<ExportedImage[]> {
  const all = { ...p, images: p.images ?? "all", history: p.history ?? false };
  for await (const rows of stream(db, EXPORT_ANNOTATIONS, all, batchSize)) {
    yield rows.map((r) => ({ ...r, annotations: r.annotations.map(annotationFromJson) }));
  }
}

export interface AmendAnnotationParams {
  annotation_id: string;
  /** The author, who is the caller. */
  user_id: string;
  caller_role: Role;
  labels: string[];
  shapes: Shape[];
}
const AMEND_ANNOTATION = statement<AmendAnnotationParams & ContentParams, AnnotationRow>(
  "annotations/amend_annotation",
);

/**
 * Replaces the author's submitted annotation with a new row (the old one superseded). `null`: not
 * the caller's submitted annotation, the image is under review or accepted, the caller is no
 * longer one of its annotators (rejected), or the content does not fit: see getAnnotation and
 * getReviewTarget.
 */
export async function amendAnnotation(
  db: Handle,
  p: AmendAnnotationParams,
): Promise<Annotation | null> {
  const row = await one(db, AMEND_ANNOTATION, { ...p, ...contentParams(p.labels, p.shapes) });
  return row && toAnnotation(row);
}

export interface AnnotationIdParams extends CallerParams {
  id: string;
}
const GET_ANNOTATION = statement<AnnotationIdParams, AnnotationRow>("annotations/get_annotation");

/** `null` when there is no such annotation or the caller may not see its dataset. */
export async function getAnnotation(
  db: Handle,
  p: AnnotationIdParams,
): Promise<Annotation | null> {
  const row = await one(db, GET_ANNOTATION, p);
  return row && toAnnotation(row);
}
