/** Typed functions for the statements in this folder: one per file. */
import { many, one } from "../../lib/db/query.ts";
import type { Handle } from "../../lib/db/pool.ts";
import { statement } from "../../lib/db/statement.ts";
import type { CallerParams, Role } from "../users/queries.ts";

/** Who may see a dataset besides admins: its members, or every user. */
export const ACCESS = ["members", "open"] as const;
export type Access = typeof ACCESS[number];

export interface Dataset {
  id: string;
  name: string;
  description: string | null;
  labels: string[];
  annotations_per_image: number;
  claim_ttl_seconds: number;
  access: Access;
  /** The share of images sent to review when they get their k-th human annotation. */
  review_rate: number;
  created_at: Date;
}

export interface CreateDatasetParams {
  name: string;
  description: string | null;
  labels: string[];
  annotations_per_image: number;
  claim_ttl_seconds: number;
  access: Access;
  /** 0 (no review) when not given. */
  review_rate?: number;
}
const CREATE_DATASET = statement<Required<CreateDatasetParams>, Dataset>(
  "datasets/create_dataset",
);

/** `null` when the name is taken. */
export function createDataset(db: Handle, p: CreateDatasetParams): Promise<Dataset | null> {
  return one(db, CREATE_DATASET, { ...p, review_rate: p.review_rate ?? 0 });
}

export interface DatasetIdParams extends CallerParams {
  id: string;
}
const GET_DATASET = statement<DatasetIdParams, Dataset>("datasets/get_dataset");

/** `null` when the dataset is missing or the caller may not see it. */
export function getDataset(db: Handle, p: DatasetIdParams): Promise<Dataset | null> {
  return one(db, GET_DATASET, p);
}

export interface DatasetSummaryRow extends Dataset {
  image_count: number;
}
const GET_DATASET_SUMMARY = statement<DatasetIdParams, DatasetSummaryRow>(
  "datasets/get_dataset_summary",
);

/** `null` when the dataset is missing or the caller may not see it. */
export function getDatasetSummary(
  db: Handle,
  p: DatasetIdParams,
): Promise<DatasetSummaryRow | null> {
  return one(db, GET_DATASET_SUMMARY, p);
}

const LIST_DATASETS = statement<CallerParams, Dataset>("datasets/list_datasets");

/** The datasets the caller may see, oldest first. */
export function listDatasets(db: Handle, p: CallerParams): Promise<Dataset[]> {
  return many(db, LIST_DATASETS, p);
}

/** The fields updateDataset changes; the others stay as they are. */
export interface DatasetChanges {
  description?: string | null;
  labels?: string[];
  claim_ttl_seconds?: number;
  annotations_per_image?: number;
  access?: Access;
  review_rate?: number;
}

export interface UpdateDatasetParams extends CallerParams {
  id: string;
  /** Whether `description` was given: it may be set to null. */
  description_given: boolean;
  description: string | null;
  labels: string[] | null;
  claim_ttl_seconds: number | null;
  annotations_per_image: number | null;
  access: Access | null;
  review_rate: number | null;
}
const UPDATE_DATASET = statement<UpdateDatasetParams, Dataset>("datasets/update_dataset");

/**
 * `null` when the dataset is missing (or the caller may not see it) or `labels` is not its
 * current labels with others appended (a dropped, renamed or moved label).
 */
export function updateDataset(
  db: Handle,
  p: { id: string } & DatasetChanges & CallerParams,
): Promise<Dataset | null> {
  return one(db, UPDATE_DATASET, {
    id: p.id,
    description_given: p.description !== undefined,
    description: p.description ?? null,
    labels: p.labels ?? null,
    claim_ttl_seconds: p.claim_ttl_seconds ?? null,
    annotations_per_image: p.annotations_per_image ?? null,
    access: p.access ?? null,
    caller_id: p.caller_id,
    caller_role: p.caller_role,
    review_rate: p.review_rate ?? null,
  });
}

export interface DatasetStats {
  images: number;
  pending: number;
  in_progress: number;
  done: number;
  in_review: number;
  accepted: number;
  /** Images a reviewer sent back that wait for their rework (also pending or in_progress). */
  rejected: number;
  human_annotations: number;
  machine_annotations: number;
  /** Claims still holding their slot: active and unexpired. */
  active_claims: number;
  /** Per annotator, most annotations first: acceptance_rate null before any review. */
  annotators: {
    user_id: string;
    annotations: number;
    accepted: number;
    rejected: number;
    acceptance_rate: number | null;
  }[];
  /** Completed reviews per reviewer, by decision, most first. */
  reviewers: {
    user_id: string;
    reviews: number;
    accepted: number;
    fixed: number;
    rejected: number;
  }[];
}
export interface DatasetStatsParams {
  id: string;
  /** The callers, each with its role at the same position in caller_roles. */
  caller_ids: string[];
  caller_roles: Role[];
}
export interface DatasetStatsRow extends DatasetStats {
  /** Per caller, in order: whether they may see the dataset. */
  visible: boolean[];
}
const GET_DATASET_STATS = statement<DatasetStatsParams, DatasetStatsRow>(
  "datasets/get_dataset_stats",
);

/** `null` when the dataset is missing or none of the callers may see it. */
export function getDatasetStats(
  db: Handle,
  p: DatasetStatsParams,
): Promise<DatasetStatsRow | null> {
  return one(db, GET_DATASET_STATS, p);
}

export interface DatasetMemberParams extends CallerParams {
  dataset_id: string;
  user_id: string;
}
/** Which of the two exist (the dataset as the caller sees it). */
export interface MembershipChange {
  dataset_found: boolean;
  user_found: boolean;
}
const ADD_DATASET_MEMBER = statement<DatasetMemberParams, MembershipChange>(
  "datasets/add_dataset_member",
);

/** Makes the user a member of the dataset (nothing changes when it already is one). */
export async function addDatasetMember(
  db: Handle,
  p: DatasetMemberParams,
): Promise<MembershipChange> {
  return (await one(db, ADD_DATASET_MEMBER, p))!;
}

const REMOVE_DATASET_MEMBER = statement<DatasetMemberParams, MembershipChange>(
  "datasets/remove_dataset_member",
);

/** Takes the user off the dataset's members (nothing changes when it is not one). */
export async function removeDatasetMember(
  db: Handle,
  p: DatasetMemberParams,
): Promise<MembershipChange> {
  return (await one(db, REMOVE_DATASET_MEMBER, p))!;
}

export interface DatasetMember {
  user_id: string;
  name: string;
  role: Role;
  added_at: Date;
}
const LIST_DATASET_MEMBERS = statement<{ dataset_id: string } & CallerParams, DatasetMember>(
  "datasets/list_dataset_members",
);

/** The dataset's members, first added first; none also when the caller may not see it. */
export function listDatasetMembers(
  db: Handle,
  p: { dataset_id: string } & CallerParams,
): Promise<DatasetMember[]> {
  return many(db, LIST_DATASET_MEMBERS, p);
}
