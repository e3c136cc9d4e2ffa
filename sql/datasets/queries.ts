/** Typed functions for the statements in this folder: one per file. */
import { type Handle, many, one, sqlFile } from "../../lib/db/query.ts";

export interface Dataset {
  id: string;
  name: string;
  description: string | null;
  labels: string[];
  annotations_per_image: number;
  claim_ttl_seconds: number;
  created_at: Date;
}

export interface DatasetSummary extends Dataset {
  image_count: number;
}

const CREATE_DATASET = sqlFile("datasets/create_dataset");
const GET_DATASET = sqlFile("datasets/get_dataset");
const GET_DATASET_SUMMARY = sqlFile("datasets/get_dataset_summary");
const LIST_DATASETS = sqlFile("datasets/list_datasets");
const UPDATE_DATASET = sqlFile("datasets/update_dataset");

export interface NewDataset {
  name: string;
  description: string | null;
  labels: string[];
  annotations_per_image: number;
  claim_ttl_seconds: number;
}

/** `null` when the name is taken. */
export function createDataset(db: Handle, d: NewDataset): Promise<Dataset | null> {
  return one<Dataset>(db, CREATE_DATASET, [
    d.name,
    d.description,
    d.labels,
    d.annotations_per_image,
    d.claim_ttl_seconds,
  ]);
}

export function getDataset(db: Handle, id: string): Promise<Dataset | null> {
  return one<Dataset>(db, GET_DATASET, [id]);
}

export function getDatasetSummary(db: Handle, id: string): Promise<DatasetSummary | null> {
  return one<DatasetSummary>(db, GET_DATASET_SUMMARY, [id]);
}

export function listDatasets(db: Handle): Promise<Dataset[]> {
  return many<Dataset>(db, LIST_DATASETS, []);
}

export interface DatasetChanges {
  description?: string | null;
  labels?: string[];
  claim_ttl_seconds?: number;
  annotations_per_image?: number;
}

/**
 * `null` when the dataset is missing or `labels` is not its current labels with others appended
 * (a dropped, renamed or moved label).
 */
export function updateDataset(
  db: Handle,
  id: string,
  ch: DatasetChanges,
): Promise<Dataset | null> {
  return one<Dataset>(db, UPDATE_DATASET, [
    id,
    ch.description !== undefined,
    ch.description ?? null,
    ch.labels ?? null,
    ch.claim_ttl_seconds ?? null,
    ch.annotations_per_image ?? null,
  ]);
}

const GET_DATASET_STATS = sqlFile("datasets/get_dataset_stats");

export interface DatasetStats {
  images: number;
  pending: number;
  in_progress: number;
  done: number;
  human_annotations: number;
  machine_annotations: number;
  /** Claims still holding their slot: active and unexpired. */
  active_claims: number;
  /** Human annotations per user, most first. */
  annotators: { user_id: string; annotations: number }[];
}

/** `null` when the dataset is missing. */
export function getDatasetStats(db: Handle, id: string): Promise<DatasetStats | null> {
  return one<DatasetStats>(db, GET_DATASET_STATS, [id]);
}
