/**
 * Reviews: leasing the next image waiting for review (retried, diagnosed), renewing and releasing
 * a review lease, submitting a decision, and the one error for a review its caller cannot use.
 */
import { ApiError, notFound } from "../lib/http/errors.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import type { MediaJson } from "../schemas/media.ts";
import type { Shape } from "../sql/annotations/queries.ts";
import * as q from "../sql/reviews/queries.ts";
import { callerParams, type Principal } from "../sql/users/queries.ts";
import { checkContent, rejectContent } from "./annotations.ts";
import { type Caller, requireDataset } from "./datasets.ts";
import { mediaOperations } from "./media.ts";

/** As claims (operations/claims.ts): tries before 503 busy, and the pause before each. */
const REVIEW_RETRY_MS = [0, 2, 10, 25, 50, 100];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A review lease being handed out (new, or the caller's live one), with media. */
export type ClaimedReview = Extract<q.ReviewOutcome, { state: "held" | "new" }> & {
  media: MediaJson;
};

/**
 * The error for a review that `userId` could not use (submit, renew or release): missing,
 * another reviewer's, ended, or expired with the image taken by another reviewer since.
 */
export function reviewProblem(review: q.Review | null, reviewId: string, userId: string): ApiError {
  if (!review) return notFound(`review ${reviewId}`);
  if (review.user_id !== userId) {
    return new ApiError(403, "review_not_yours", `review ${reviewId} is held by another reviewer`);
  }
  if (!review.active) {
    const reason = review.end_reason ?? "ended";
    return new ApiError(409, `review_${reason}`, `review ${reviewId} has already been ${reason}`);
  }
  return new ApiError(
    409,
    "review_expired",
    `review ${reviewId} expired and its image has been taken by another reviewer (or left ` +
      "the review queue)",
  );
}

export interface ReviewDecisionInput {
  claim_id: string;
  decision: q.ReviewDecision;
  comment?: string;
  annotation?: { labels?: string[]; shapes?: Shape[] };
}

export interface ReviewOperations {
  /**
   * The caller's next image to review in the dataset (`new`), or the live review lease it holds
   * there (`held`); `null` when nothing is left for it to review. 404 for a dataset it may not
   * see, 503 when the reviewable images stayed locked through every try.
   */
  claimNext(datasetId: string, caller: Caller, origin: string): Promise<ClaimedReview | null>;
  /** The review with its new expiry and fresh media, or the reviewProblem. */
  renew(
    reviewId: string,
    caller: Principal,
    origin: string,
  ): Promise<q.Review & { media: MediaJson }>;
  /** Ends the review (its holder, or an admin for anyone's), or the reviewProblem. */
  release(reviewId: string, caller: Principal): Promise<void>;
  /** Records the decision, or says why it was refused. */
  submit(imageId: string, body: ReviewDecisionInput, caller: Principal): Promise<q.ReviewResult>;
}

export function reviewOperations(deps: Deps): ReviewOperations {
  const { db } = deps;
  const media = mediaOperations(deps);

  /** Why a valid-looking decision was refused. */
  async function diagnose(
    imageId: string,
    body: ReviewDecisionInput,
    caller: Principal,
  ): Promise<never> {
    const who = callerParams(caller);
    const review = await q.getReview(db, { id: body.claim_id, ...who });
    if (review && review.user_id === caller.id && review.image_id !== imageId) {
      throw new ApiError(
        409,
        "review_mismatch",
        `review ${body.claim_id} is for image ${review.image_id}, not image ${imageId}`,
      );
    }
    if (!review || review.user_id !== caller.id || !review.active) {
      throw reviewProblem(review, body.claim_id, caller.id);
    }
    const target = await q.getReviewTarget(db, {
      image_id: imageId,
      user_id: caller.id,
      caller_role: caller.role,
    });
    if (!target) throw notFound(`image ${imageId}`);
    if (target.review_lease_id === body.claim_id && target.review === "waiting") {
      if (target.is_annotator) {
        throw new ApiError(
          409,
          "own_annotation",
          `you annotated image ${imageId}: a reviewer never reviews their own work`,
        );
      }
      if (body.decision === "fix") {
        rejectContent(
          checkContent(body.annotation ?? {}, new Set(target.labels), target, "body.annotation"),
        );
      }
      throw new ApiError(409, "conflict", `image ${imageId} changed meanwhile; retry`);
    }
    throw reviewProblem(review, body.claim_id, caller.id);
  }

  return {
    async claimNext(datasetId, caller, origin) {
      const p = { dataset_id: datasetId, user_id: caller.id, caller_role: caller.role };
      for (const pause of REVIEW_RETRY_MS) {
        if (pause) await sleep(pause);
        const outcome = await q.claimNextReview(db, p);
        if (!outcome) {
          // Nothing reviewable, all of it locked, or no dataset the caller may see: only the
          // rare empty answer pays for telling which.
          if (await q.findReviewableImage(db, p)) continue;
          await requireDataset(db, datasetId, caller);
          return null;
        }
        if (outcome.state === "conflict") continue;
        return {
          ...outcome,
          media: await media.forImage(outcome.image, outcome.review.expires_at, origin),
        };
      }
      throw new ApiError(
        503,
        "busy",
        "the images waiting for review stayed locked by other requests; retry",
      );
    },

    async renew(reviewId, caller, origin) {
      const renewed = await q.renewReview(db, {
        review_id: reviewId,
        user_id: caller.id,
        caller_role: caller.role,
      });
      if (renewed) {
        const { image_uri, ...review } = renewed;
        return {
          ...review,
          media: await media.forImage({ uri: image_uri }, review.expires_at, origin),
        };
      }
      const review = await q.getReview(db, { id: reviewId, ...callerParams(caller) });
      throw reviewProblem(review, reviewId, caller.id);
    },

    async release(reviewId, caller) {
      const who = callerParams(caller);
      // An admin may release anyone's review: released as its holder, found first.
      const holder = caller.role === "admin"
        ? (await q.getReview(db, { id: reviewId, ...who }))?.user_id ?? caller.id
        : caller.id;
      if (await q.releaseReview(db, { review_id: reviewId, user_id: holder, ...who })) return;
      throw reviewProblem(await q.getReview(db, { id: reviewId, ...who }), reviewId, holder);
    },

    async submit(imageId, body, caller) {
      const result = await q.submitReview(db, {
        review_id: body.claim_id,
        image_id: imageId,
        user_id: caller.id,
        caller_role: caller.role,
        decision: body.decision,
        comment: body.comment ?? null,
        labels: body.annotation?.labels ?? [],
        shapes: body.annotation?.shapes ?? [],
      });
      return result ?? await diagnose(imageId, body, caller);
    },
  };
}
