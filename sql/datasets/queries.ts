/** Typed functions for the statements in this folder: one per file. */
import { many, one } from "../../lib/db/query.ts";
import type { Handle } from "../../lib/db/pool.ts";
import { statement } from "../../lib/db/statement.ts";

export interface Dataset {
  id: string;
  name: string;
  description: string | null;
  labels: string[];
  annotations_per_image: number;
  claim_ttl_seconds: number;
  created_at: Date;
}

export interface CreateDatasetParams {
  name: string;
  description: string | null;
  labels: string[];
  annotations_per_image: number;
  claim_ttl_seconds: number;
}
const CREATE_DATASET = statement<CreateDatasetParams, Dataset>("datasets/create_dataset");

/** `null` when the name is taken. */
export function createDataset(db: Handle, p: CreateDatasetParams): Promise<Dataset | null> {
  return one(db, CREATE_DATASET, p);
}

export interface DatasetIdParams {
  id: string;
}
const GET_DATASET = statement<DatasetIdParams, Dataset>("datasets/get_dataset");

export function getDataset(db: Handle, p: DatasetIdParams): Promise<Dataset | null> {
  return one(db, GET_DATASET, p);
}

export interface DatasetSummaryRow extends Dataset {
  image_count: number;
}
const GET_DATASET_SUMMARY = statement<DatasetIdParams, DatasetSummaryRow>(
  "datasets/get_dataset_summary",
);

export function getDatasetSummary(
  db: Handle,
  p: DatasetIdParams,
): Promise<DatasetSummaryRow | null> {
  return one(db, GET_DATASET_SUMMARY, p);
}

const LIST_DATASETS = statement<Record<never, never>, Dataset>("datasets/list_datasets");

export function listDatasets(db: Handle): Promise<Dataset[]> {
  return many(db, LIST_DATASETS, {});
}

/** The fields updateDataset changes; the others stay as they are. */
export interface DatasetChanges {
  description?: string | null;
  labels?: string[];
  claim_ttl_seconds?: number;
  annotations_per_image?: number;
}

export interface UpdateDatasetParams {
  id: string;
  /** Whether `description` was given: it may be set to null. */
  description_given: boolean;
  description: string | null;
  labels: string[] | null;
  claim_ttl_seconds: number | null;
  annotations_per_image: number | null;
}
const UPDATE_DATASET = statement<UpdateDatasetParams, Dataset>("datasets/update_dataset");

/**
 * `null` when the dataset is missing or `labels` is not its current labels with others appended
 * (a dropped, renamed or moved label).
 */
export function updateDataset(
  db: Handle,
  p: { id: string } & DatasetChanges,
): Promise<Dataset | null> {
  return one(db, UPDATE_DATASET, {
    id: p.id,
    description_given: p.description !== undefined,
    description: p.description ?? null,
    labels: p.labels ?? null,
    claim_ttl_seconds: p.claim_ttl_seconds ?? null,
    annotations_per_image: p.annotations_per_image ?? null,
  });
}

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
const GET_DATASET_STATS = statement<DatasetIdParams, DatasetStats>("datasets/get_dataset_stats");

/** `null` when the dataset is missing. */
export function getDatasetStats(db: Handle, p: DatasetIdParams): Promise<DatasetStats | null> {
  return one(db, GET_DATASET_STATS, p);
}
