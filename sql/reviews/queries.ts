/** Typed functions for the statements in this folder: one per file. */
import { one } from "../../lib/db/query.ts";
import type { Handle } from "../../lib/db/pool.ts";
import { statement } from "../../lib/db/statement.ts";
import {
  type Annotation,
  annotationFromJson,
  type AnnotationJsonRow,
  contentBounds,
  type Shape,
} from "../annotations/queries.ts";
import type { Image } from "../images/queries.ts";
import type { NewLease, ReviewDecision } from "../leases/queries.ts";
import type { Role } from "../users/queries.ts";

/** A review lease as claimNextReview hands it out (always active and live). */
export type NewReview = NewLease;

/** A current human annotation as a reviewer sees it: with its author's name. */
export type ReviewedAnnotation = Annotation & { author_name: string };

export type ReviewOutcome =
  | {
    state: "held" | "new";
    review: NewReview;
    image: Image;
    /** The image's current human annotations (submitted or accepted), with authors. */
    annotations: ReviewedAnnotation[];
    /** The image's latest machine annotation per model. */
    predictions: Annotation[];
  }
  /** Lost to a concurrent first review by the same caller: call again (`held`). */
  | { state: "conflict" };

export interface ClaimNextReviewParams {
  dataset_id: string;
  /** The caller. */
  user_id: string;
  caller_role: Role;
}
interface ClaimNextReviewRow extends Image {
  state: "held" | "new" | "conflict";
  review_id: string;
  user_id: string;
  review_created_at: Date;
  expires_at: Date;
  annotations: (AnnotationJsonRow & { author_name: string })[];
  predictions: AnnotationJsonRow[];
}
const CLAIM_NEXT_REVIEW = statement<ClaimNextReviewParams, ClaimNextReviewRow>(
  "reviews/claim_next_review",
);

/**
 * Leases the next image waiting for review to the reviewer, or returns the live review lease they
 * hold in the dataset. `null`: nothing reviewable for them at this instant (all of it may be
 * locked: see findReviewableImage), or no dataset they may see.
 */
export async function claimNextReview(
  db: Handle,
  p: ClaimNextReviewParams,
): Promise<ReviewOutcome | null> {
  const row = await one(db, CLAIM_NEXT_REVIEW, p);
  if (!row) return null;
  if (row.state === "conflict") return { state: "conflict" };
  const {
    state,
    review_id,
    user_id,
    review_created_at,
    expires_at,
    annotations,
    predictions,
    ...image
  } = row;
  return {
    state,
    review: {
      id: review_id,
      dataset_id: image.dataset_id,
      image_id: image.id,
      user_id,
      created_at: review_created_at,
      expires_at,
    },
    image,
    annotations: annotations.map((a) => ({ ...annotationFromJson(a), author_name: a.author_name })),
    predictions: predictions.map(annotationFromJson),
  };
}

const FIND_REVIEWABLE_IMAGE = statement<ClaimNextReviewParams, { reviewable: boolean }>(
  "reviews/find_reviewable_image",
);

/** Whether the dataset has an image the reviewer could review, ignoring row locks. */
export async function findReviewableImage(
  db: Handle,
  p: ClaimNextReviewParams,
): Promise<boolean> {
  return (await one(db, FIND_REVIEWABLE_IMAGE, p))?.reviewable ?? false;
}

export interface NewReviewDecision {
  review_id: string;
  image_id: string;
  /** The reviewer, who is the caller. */
  user_id: string;
  caller_role: Role;
  decision: ReviewDecision;
  comment: string | null;
  /** The fix's content (decision `fix`); empty otherwise. */
  labels: string[];
  shapes: Shape[];
}
interface SubmitReviewParams extends NewReviewDecision {
  used_labels: string[];
  max_x: number;
  max_y: number;
}
interface SubmitReviewRow extends Image {
  author_ids: string[];
  fix: AnnotationJsonRow | null;
}
const SUBMIT_REVIEW = statement<SubmitReviewParams, SubmitReviewRow>("reviews/submit_review");

/** What a review decided: the image as it is now, whose work it judged, and a fix's annotation. */
export interface ReviewResult {
  image: Image;
  /** The authors of the annotations it accepted, rejected or (fix) superseded. */
  author_ids: string[];
  fix: Annotation | null;
}

/**
 * Records the decision and ends the review. `null`: the review is not the caller's active review
 * of this image, another reviewer took the image after it expired, the caller annotated the
 * image, the fix's content does not fit, or the caller may no longer see the dataset: look the
 * review and the image up (getReview, getReviewTarget) to tell which.
 */
export async function submitReview(
  db: Handle,
  d: NewReviewDecision,
): Promise<ReviewResult | null> {
  const b = contentBounds(d.labels, d.shapes);
  const row = await one(db, SUBMIT_REVIEW, {
    ...d,
    used_labels: b.labels,
    max_x: b.maxX,
    max_y: b.maxY,
  });
  if (!row) return null;
  const { author_ids, fix, ...image } = row;
  return { image, author_ids, fix: fix && annotationFromJson(fix) };
}

export interface ReviewTargetParams {
  image_id: string;
  user_id: string;
  caller_role: Role;
}
export interface ReviewTarget {
  id: string;
  dataset_id: string;
  labels: string[];
  width: number | null;
  height: number | null;
  review: "waiting" | "accepted" | null;
  review_lease_id: string | null;
  review_lease_live: boolean | null;
  is_annotator: boolean;
}
const GET_REVIEW_TARGET = statement<ReviewTargetParams, ReviewTarget>(
  "reviews/get_review_target",
);

/** The image's review state and the caller's part in it, for diagnosing a refusal. */
export function getReviewTarget(db: Handle, p: ReviewTargetParams): Promise<ReviewTarget | null> {
  return one(db, GET_REVIEW_TARGET, p);
}
