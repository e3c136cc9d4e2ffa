/**
 * Reviews: leasing the next image waiting for review (retried, diagnosed) and submitting a
 * decision. Renewing and releasing a review, and the error for one its caller cannot use, are
 * operations/leases.ts's (kind `review`).
 */
import { ApiError, notFound } from "../lib/http/errors.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import type { MediaJson } from "../schemas/media.ts";
import type { Shape } from "../sql/annotations/queries.ts";
import { getLease, type ReviewDecision } from "../sql/leases/queries.ts";
import * as q from "../sql/reviews/queries.ts";
import { callerParams, type Principal } from "../sql/users/queries.ts";
import { checkContent, rejectContent } from "./annotations.ts";
import { type Caller, requireDataset } from "./datasets.ts";
import { leaseProblem } from "./leases.ts";
import { mediaOperations } from "./media.ts";

/** As claims (operations/claims.ts): tries before 503 busy, and the pause before each. */
const REVIEW_RETRY_MS = [0, 2, 10, 25, 50, 100];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A review lease being handed out (new, or the caller's live one), with media. */
export type ClaimedReview = Extract<q.ReviewOutcome, { state: "held" | "new" }> & {
  media: MediaJson;
};

export interface ReviewDecisionInput {
  claim_id: string;
  decision: ReviewDecision;
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
    const review = await getLease(db, { kind: "review", id: body.claim_id, ...who });
    if (review && review.user_id === caller.id && review.image_id !== imageId) {
      throw new ApiError(
        409,
        "review_mismatch",
        `review ${body.claim_id} is for image ${review.image_id}, not image ${imageId}`,
      );
    }
    if (!review || review.user_id !== caller.id || !review.active) {
      throw leaseProblem("review", review, body.claim_id, caller.id);
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
    throw leaseProblem("review", review, body.claim_id, caller.id);
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
