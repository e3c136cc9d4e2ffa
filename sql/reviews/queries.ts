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
import type { CallerParams, Role } from "../users/queries.ts";

export type ReviewDecision = "accept" | "fix" | "reject";

/** A review lease as it stands, live or ended. */
export interface Review {
  id: string;
  dataset_id: string;
  image_id: string;
  user_id: string;
  created_at: Date;
  expires_at: Date;
  /** Not yet submitted or released. */
  active: boolean;
  /** `revoked`: ended because its reviewer may no longer see the dataset (revokeReviews). */
  end_reason: "completed" | "released" | "expired" | "revoked" | null;
  /** The decision of a completed review. */
  decision: ReviewDecision | null;
  /** Active and unexpired. */
  live: boolean;
}

/** A review lease as claimNextReview hands it out. */
export interface NewReview {
  id: string;
  dataset_id: string;
  image_id: string;
  user_id: string;
  created_at: Date;
  expires_at: Date;
}

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

export interface ReviewIdParams extends CallerParams {
  id: string;
}
const GET_REVIEW = statement<ReviewIdParams, Review>("reviews/get_review");

/** `null` when there is no such review or the caller may not see its dataset. */
export function getReview(db: Handle, p: ReviewIdParams): Promise<Review | null> {
  return one(db, GET_REVIEW, p);
}

export interface HeldReviewParams {
  review_id: string;
  /** The holder, who is the caller. */
  user_id: string;
  caller_role: Role;
}
/** A renewed review, with its image's URI (the answer carries fresh media). */
export interface RenewedReview extends Review {
  image_uri: string;
}
const RENEW_REVIEW = statement<HeldReviewParams, RenewedReview>("reviews/renew_review");

/**
 * Extends the reviewer's active review by the dataset's claim_ttl_seconds from now. `null`: no
 * such active review of theirs, or it expired and another reviewer took the image.
 */
export function renewReview(db: Handle, p: HeldReviewParams): Promise<RenewedReview | null> {
  return one(db, RENEW_REVIEW, p);
}

export interface ReleaseReviewParams extends CallerParams {
  review_id: string;
  /** The holder: the caller, or another reviewer when an admin releases it. */
  user_id: string;
}
const RELEASE_REVIEW = statement<ReleaseReviewParams, Review>("reviews/release_review");

/** Ends the review and returns the image to the review queue. `null`: no such active review. */
export function releaseReview(db: Handle, p: ReleaseReviewParams): Promise<Review | null> {
  return one(db, RELEASE_REVIEW, p);
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

export interface RevokeReviewsParams extends CallerParams {
  dataset_id: string;
  /** Only this user's review; null: every reviewer's. */
  user_id: string | null;
}
const REVOKE_REVIEWS = statement<RevokeReviewsParams, { revoked: number }>(
  "reviews/revoke_reviews",
);

/**
 * Ends as `revoked`, giving their images back to the review queue at once, the active review
 * leases in the dataset of reviewers (or of the one user) who may no longer see it. Run in the
 * transaction that took it from them, after revokeClaims. Returns how many it ended.
 */
export async function revokeReviews(db: Handle, p: RevokeReviewsParams): Promise<number> {
  return (await one(db, REVOKE_REVIEWS, p))!.revoked;
}
