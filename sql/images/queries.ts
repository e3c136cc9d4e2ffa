/** Typed functions for the statements in this folder: one per file. */
import { exec, type Handle, many, one, sqlFile } from "../../lib/db/query.ts";

export type ImageStatus = "pending" | "in_progress" | "done";

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

export interface NewImage {
  uri: string;
  external_id?: string | null;
  width?: number | null;
  height?: number | null;
  priority?: number | null;
  metadata?: Record<string, unknown> | null;
}

export interface RegisteredImage {
  id: string | null;
  external_id: string | null;
  created: boolean;
}

const REGISTER_IMAGES = sqlFile("images/register_images");
const INSERT_NEW_IMAGES = sqlFile("images/insert_new_images");
const LIST_IMAGES = sqlFile("images/list_images");
const GET_IMAGE = sqlFile("images/get_image");
const UPDATE_IMAGE = sqlFile("images/update_image");
const DELETE_IMAGE = sqlFile("images/delete_image");
const SET_ANNOTATIONS_PER_IMAGE = sqlFile("images/set_annotations_per_image");
const SET_PRIORITIES = sqlFile("images/set_priorities");
const FIND_IMAGE_SIZES = sqlFile("images/find_image_sizes");
const GET_ANNOTATION_TARGET = sqlFile("images/get_annotation_target");

/** register_images.sql's and insert_new_images.sql's parameters: one JSON array per column. */
export function imageColumns(datasetId: string, images: NewImage[]): unknown[] {
  // A key left out is null, metadata {}.
  const n = images.length;
  const externalIds = new Array<string | null>(n);
  const uris = new Array<string>(n);
  const widths = new Array<number | null>(n);
  const heights = new Array<number | null>(n);
  const priorities = new Array<number | null>(n);
  const metadata = new Array<Record<string, unknown>>(n);
  for (let i = 0; i < n; i++) {
    const image = images[i];
    externalIds[i] = image.external_id ?? null;
    uris[i] = image.uri;
    widths[i] = image.width ?? null;
    heights[i] = image.height ?? null;
    priorities[i] = image.priority ?? null;
    metadata[i] = image.metadata ?? {};
  }
  return [datasetId, externalIds, uris, widths, heights, priorities, metadata];
}

/**
 * One row per input, in order. `id` is null only for an external_id that a concurrent batch
 * committed while this statement ran (invisible to its snapshot): register it again.
 */
export function registerImages(
  db: Handle,
  datasetId: string,
  images: NewImage[],
): Promise<RegisteredImage[]> {
  return many<RegisteredImage>(db, REGISTER_IMAGES, imageColumns(datasetId, images));
}

/**
 * Inserts images whose external_ids are new to the dataset and distinct, answering their ids in
 * order (none when the dataset is gone). Throws a unique violation on
 * `IMAGES_EXTERNAL_ID_KEY`, having written nothing, when an external_id is already registered.
 */
export async function insertNewImages(
  db: Handle,
  datasetId: string,
  images: NewImage[],
): Promise<string[]> {
  const rows = await many<{ id: string }>(db, INSERT_NEW_IMAGES, imageColumns(datasetId, images));
  return rows.map((r) => r.id);
}

/** The unique index on (dataset_id, external_id) that insertNewImages can trip over. */
export const IMAGES_EXTERNAL_ID_KEY = "images_dataset_external_id_key";

/** Images with id greater than `afterId`, in id order. */
export function listImages(
  db: Handle,
  datasetId: string,
  afterId: string,
  limit: number,
): Promise<Image[]> {
  return many<Image>(db, LIST_IMAGES, [datasetId, afterId, limit]);
}

export function getImage(db: Handle, id: string): Promise<Image | null> {
  return one<Image>(db, GET_IMAGE, [id]);
}

export function updateImage(
  db: Handle,
  id: string,
  ch: { priority?: number; metadata?: Record<string, unknown> },
): Promise<Image | null> {
  return one<Image>(db, UPDATE_IMAGE, [id, ch.priority ?? null, ch.metadata ?? null]);
}

/** Rows deleted: 0 or 1. */
export function deleteImage(db: Handle, id: string): Promise<number> {
  return exec(db, DELETE_IMAGE, [id]);
}

/**
 * The dataset's new annotations_per_image on each of its images, with done and full_until
 * recomputed; run in the same transaction as updateDataset. Returns the images rewritten.
 */
export function setAnnotationsPerImage(db: Handle, datasetId: string, k: number): Promise<number> {
  return exec(db, SET_ANNOTATIONS_PER_IMAGE, [datasetId, k]);
}

export interface PriorityUpdate {
  image_id?: string;
  external_id?: string;
  priority: number;
}

/** `not_found` holds 1-based positions in `updates`. */
export function setPriorities(
  db: Handle,
  datasetId: string,
  updates: PriorityUpdate[],
): Promise<{ updated: number; not_found: number[] }> {
  return one<{ updated: number; not_found: number[] }>(db, SET_PRIORITIES, [
    datasetId,
    updates.map((u) => u.image_id ?? null),
    updates.map((u) => u.external_id ?? null),
    updates.map((u) => u.priority),
  ]).then((r) => r!);
}

/** At least one of width and height is known. */
export interface ImageSize {
  id: string;
  external_id: string | null;
  width: number | null;
  height: number | null;
}

/** Sizes of the named images of the dataset that have one (or one dimension of one). */
export function findImageSizes(
  db: Handle,
  datasetId: string,
  ids: string[],
  externalIds: string[],
): Promise<ImageSize[]> {
  return many<ImageSize>(db, FIND_IMAGE_SIZES, [datasetId, ids, externalIds]);
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

/** `null` when the image is missing. */
export function getAnnotationTarget(db: Handle, imageId: string): Promise<AnnotationTarget | null> {
  return one<AnnotationTarget>(db, GET_ANNOTATION_TARGET, [imageId]);
}
