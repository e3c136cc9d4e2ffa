/** Typed functions for the statements in this folder: one per file. */
import { exec, many, one } from "../../lib/db/query.ts";
import type { Handle } from "../../lib/db/pool.ts";
import { statement } from "../../lib/db/statement.ts";
import type { CallerParams } from "../users/queries.ts";

export type ImageStatus = "pending" | "in_progress" | "done" | "in_review" | "accepted";

/** An image as the API shows it (image_status gives its status). */
export interface Image {
  id: string;
  dataset_id: string;
  external_id: string | null;
  uri: string;
  width: number | null;
  height: number | null;
  priority: number;
  metadata: Record<string, unknown>;
  status: ImageStatus;
  created_at: Date;
}

/** An image to register; a key left out is null, metadata {}. */
export interface NewImage {
  uri: string;
  external_id?: string | null;
  width?: number | null;
  height?: number | null;
  priority?: number | null;
  metadata?: Record<string, unknown> | null;
}

/** A registerImages batch: one JSON array per column (image_batch in the schema says why). */
export interface ImageBatchParams extends CallerParams {
  dataset_id: string;
  external_ids: (string | null)[];
  uris: string[];
  widths: (number | null)[];
  heights: (number | null)[];
  priorities: (number | null)[];
  metadata: Record<string, unknown>[];
}

/** The batch in image_batch's form, registered by `caller`. */
export function imageBatch(
  datasetId: string,
  images: readonly NewImage[],
  caller: CallerParams,
): ImageBatchParams {
  const n = images.length;
  const p: ImageBatchParams = {
    dataset_id: datasetId,
    caller_id: caller.caller_id,
    caller_role: caller.caller_role,
    external_ids: new Array(n),
    uris: new Array(n),
    widths: new Array(n),
    heights: new Array(n),
    priorities: new Array(n),
    metadata: new Array(n),
  };
  for (let i = 0; i < n; i++) {
    const image = images[i];
    p.external_ids[i] = image.external_id ?? null;
    p.uris[i] = image.uri;
    p.widths[i] = image.width ?? null;
    p.heights[i] = image.height ?? null;
    p.priorities[i] = image.priority ?? null;
    p.metadata[i] = image.metadata ?? {};
  }
  return p;
}

export interface RegisterImagesRow {
  /** Null only for an external_id a concurrent batch committed while the statement ran. */
  id: string | null;
  external_id: string | null;
  created: boolean;
}
const REGISTER_IMAGES = statement<ImageBatchParams, RegisterImagesRow>("images/register_images");

/**
 * One row per input, in order. `id` is null only for an external_id that a concurrent batch
 * committed while this statement ran (invisible to its snapshot): register it again. No rows at
 * all when the dataset is missing or the caller may not see it.
 */
export function registerImages(db: Handle, p: ImageBatchParams): Promise<RegisterImagesRow[]> {
  return many(db, REGISTER_IMAGES, p);
}

const INSERT_NEW_IMAGES = statement<ImageBatchParams, { id: string }>("images/insert_new_images");

/**
 * Inserts images whose external_ids are new to the dataset and distinct, answering their ids in
 * order (none when the dataset is gone or the caller may not see it). Throws a unique violation on
 * `IMAGES_EXTERNAL_ID_KEY`, having written nothing, when an external_id is already registered.
 */
export async function insertNewImages(db: Handle, p: ImageBatchParams): Promise<string[]> {
  const rows = await many(db, INSERT_NEW_IMAGES, p);
  return rows.map((r) => r.id);
}

/** The unique index on (dataset_id, external_id) that insertNewImages can trip over. */
export const IMAGES_EXTERNAL_ID_KEY = "images_dataset_external_id_key";

export interface ListImagesParams extends CallerParams {
  dataset_id: string;
  /** The last id of the previous page; "0" for the first. */
  after_id: string;
  limit: number;
}
const LIST_IMAGES = statement<ListImagesParams, Image>("images/list_images");

/** Images with id greater than `after_id`, in id order; none when the caller may not see them. */
export function listImages(db: Handle, p: ListImagesParams): Promise<Image[]> {
  return many(db, LIST_IMAGES, p);
}

export interface FindImageByExternalIdParams extends CallerParams {
  dataset_id: string;
  external_id: string;
  /** listImages' cursor; "0" for none. */
  after_id: string;
}
const FIND_IMAGE_BY_EXTERNAL_ID = statement<FindImageByExternalIdParams, Image>(
  "images/find_image_by_external_id",
);

/**
 * The dataset's image with that external_id (and an id above `after_id`), if any; none when the
 * caller may not see the dataset.
 */
export function findImageByExternalId(
  db: Handle,
  p: FindImageByExternalIdParams,
): Promise<Image | null> {
  return one(db, FIND_IMAGE_BY_EXTERNAL_ID, p);
}

export interface ImageIdParams extends CallerParams {
  id: string;
}
const GET_IMAGE = statement<ImageIdParams, Image>("images/get_image");

/** `null` when the image is missing or the caller may not see its dataset. */
export function getImage(db: Handle, p: ImageIdParams): Promise<Image | null> {
  return one(db, GET_IMAGE, p);
}

export interface UpdateImageParams extends CallerParams {
  id: string;
  /** Null: unchanged. */
  priority: number | null;
  metadata: Record<string, unknown> | null;
}
const UPDATE_IMAGE = statement<UpdateImageParams, Image>("images/update_image");

/** `null`, having changed nothing, when the image is missing or the caller may not see it. */
export function updateImage(db: Handle, p: UpdateImageParams): Promise<Image | null> {
  return one(db, UPDATE_IMAGE, p);
}

const DELETE_IMAGE = statement<ImageIdParams, { id: string }>("images/delete_image");

/** Rows deleted: 0 or 1 (0 also when the caller may not see the image's dataset). */
export function deleteImage(db: Handle, p: ImageIdParams): Promise<number> {
  return exec(db, DELETE_IMAGE, p);
}

export interface SetAnnotationsPerImageParams extends CallerParams {
  dataset_id: string;
  annotations_per_image: number;
}
const SET_ANNOTATIONS_PER_IMAGE = statement<SetAnnotationsPerImageParams, never>(
  "images/set_annotations_per_image",
);

/**
 * The dataset's new annotations_per_image on each of its images, with done and full_until
 * recomputed; run in the same transaction as updateDataset. Returns the images rewritten.
 */
export function setAnnotationsPerImage(
  db: Handle,
  p: SetAnnotationsPerImageParams,
): Promise<number> {
  return exec(db, SET_ANNOTATIONS_PER_IMAGE, p);
}

export interface SetPrioritiesParams extends CallerParams {
  dataset_id: string;
  /** Per item, its image by id or (null there) by external_id. */
  image_ids: (string | null)[];
  external_ids: (string | null)[];
  priorities: number[];
}
export interface SetPrioritiesRow {
  updated: number;
  /** 1-based positions of the items that matched no image. */
  not_found: number[];
}
const SET_PRIORITIES = statement<SetPrioritiesParams, SetPrioritiesRow>("images/set_priorities");

/** `null`, having changed nothing, when the dataset is missing or the caller may not see it. */
export function setPriorities(
  db: Handle,
  p: SetPrioritiesParams,
): Promise<SetPrioritiesRow | null> {
  return one(db, SET_PRIORITIES, p);
}

export interface FindImageSizesParams extends CallerParams {
  dataset_id: string;
  ids: string[];
  external_ids: string[];
}
/** At least one of width and height is known. */
export interface ImageSize {
  id: string;
  external_id: string | null;
  width: number | null;
  height: number | null;
}
const FIND_IMAGE_SIZES = statement<FindImageSizesParams, ImageSize>("images/find_image_sizes");

/** Sizes of the named images of the dataset that have one (or one dimension of one). */
export function findImageSizes(db: Handle, p: FindImageSizesParams): Promise<ImageSize[]> {
  return many(db, FIND_IMAGE_SIZES, p);
}

/** What an annotation of an image is checked against. */
export interface AnnotationTarget {
  id: string;
  dataset_id: string;
  width: number | null;
  height: number | null;
  /** The dataset's label vocabulary. */
  labels: string[];
}
const GET_ANNOTATION_TARGET = statement<{ image_id: string } & CallerParams, AnnotationTarget>(
  "images/get_annotation_target",
);

/** `null` when the image is missing or the caller may not see its dataset. */
export function getAnnotationTarget(
  db: Handle,
  p: { image_id: string } & CallerParams,
): Promise<AnnotationTarget | null> {
  return one(db, GET_ANNOTATION_TARGET, p);
}
