/** Typed functions for the statements in this folder: one per file. */
import { many, one } from "../../lib/db/query.ts";
import type { Handle } from "../../lib/db/pool.ts";
import { statement } from "../../lib/db/statement.ts";
import {
  type Annotation,
  annotationFromJson,
  type AnnotationJsonRow,
} from "../annotations/queries.ts";
import type { Image } from "../images/queries.ts";
import type { NewLease } from "../leases/queries.ts";
import type { Role } from "../users/queries.ts";

/** A claim as claimNextImage hands it out (always active and live). */
export type NewClaim = NewLease;

/** Why an image came back to the annotation queue: a reviewer's reject (rework_note). */
export interface Rework {
  comment: string | null;
  reviewed_by: string;
  reviewed_at: Date;
  rejected_annotation_id: string;
}

/** A machine annotation that pre-fills the editor: the latest of its model on the image. */
export type Prediction = Annotation;

export type ClaimOutcome =
  /** `held`: the caller's existing live claim, unchanged; `new`: just claimed. */
  | {
    state: "held" | "new";
    claim: NewClaim;
    image: Image;
    /** The image's latest machine annotation per model, by model name. */
    predictions: Prediction[];
    /** For an image a reviewer sent back: the reject's note; null otherwise. */
    rework: Rework | null;
  }
  /** Lost to a concurrent claim by the same caller: call again, which answers `held`. */
  | { state: "conflict" };

/** The columns both claim statements answer per caller (claim, image, predictions). */
interface ClaimedRow extends Image {
  claim_id: string;
  user_id: string;
  claim_created_at: Date;
  expires_at: Date;
  predictions: AnnotationJsonRow[];
  rework: (Omit<Rework, "reviewed_at"> & { reviewed_at: string }) | null;
}

export interface ClaimNextImageParams {
  dataset_id: string;
  /** The caller. */
  user_id: string;
  caller_role: Role;
}
export interface ClaimNextImageRow extends ClaimedRow {
  state: "held" | "new" | "conflict";
}
const CLAIM_NEXT_IMAGE = statement<ClaimNextImageParams, ClaimNextImageRow>(
  "claims/claim_next_image",
);

/**
 * Leases the next image of the dataset to the user, or returns the claim the user already holds
 * there (renewed if it had expired with its slot still free). `null`: nothing claimable for this
 * user at this instant (all of it may be locked: see findClaimableImage), or no such dataset (or
 * none the user may see).
 */
export async function claimNextImage(
  db: Handle,
  p: ClaimNextImageParams,
): Promise<ClaimOutcome | null> {
  const row = await one(db, CLAIM_NEXT_IMAGE, p);
  if (!row) return null;
  if (row.state === "conflict") return { state: "conflict" };
  return claimOutcome(row, row.state);
}

export interface ClaimNextImagesParams {
  dataset_id: string;
  /** Distinct. */
  user_ids: readonly string[];
  /** Each user's role, at the user's position in user_ids. */
  user_roles: readonly Role[];
  /**
   * null, or for each user the claim a submit sent just before this statement was to complete:
   * the user is answered only if that claim ended 'completed' (otherwise undefined, and nothing
   * is written for them).
   */
  after_claim_ids: readonly string[] | null;
}
export interface ClaimNextImagesRow extends ClaimedRow {
  /** 'single': left to claim_next_image.sql for this user. */
  state: "held" | "new" | "single";
}
const CLAIM_NEXT_IMAGES = statement<ClaimNextImagesParams, ClaimNextImagesRow>(
  "claims/claim_next_images",
);

/**
 * claimNextImage for several users of one dataset in one statement (lib/db/batcher.ts gathers
 * them). Per user, in order: `held` or `new` as claimNextImage would answer, or `undefined`: run
 * claimNextImage for that user (claim_next_images.sql says when).
 */
export async function claimNextImages(
  db: Handle,
  p: ClaimNextImagesParams,
): Promise<(ClaimOutcome | undefined)[]> {
  const rows = await many(db, CLAIM_NEXT_IMAGES, p);
  const byUser = new Map(rows.map((r) => [r.user_id, r]));
  return p.user_ids.map((id) => {
    const row = byUser.get(id);
    return row && (row.state === "held" || row.state === "new")
      ? claimOutcome(row, row.state)
      : undefined;
  });
}

function claimOutcome(row: ClaimedRow & { state: string }, state: "held" | "new"): ClaimOutcome {
  const {
    state: _,
    claim_id,
    user_id,
    claim_created_at,
    expires_at,
    predictions,
    rework,
    ...image
  } = row;
  return {
    state,
    claim: {
      id: claim_id,
      dataset_id: image.dataset_id,
      image_id: image.id,
      user_id,
      created_at: claim_created_at,
      expires_at,
    },
    image,
    predictions: predictions.map(annotationFromJson),
    rework: rework && { ...rework, reviewed_at: new Date(rework.reviewed_at) },
  };
}

const FIND_CLAIMABLE_IMAGE = statement<ClaimNextImageParams, { claimable: boolean }>(
  "claims/find_claimable_image",
);

/**
 * Whether the dataset has an image the user could claim, ignoring row locks: after
 * claimNextImage found nothing, tells an empty queue from one whose rows were all locked.
 */
export async function findClaimableImage(db: Handle, p: ClaimNextImageParams): Promise<boolean> {
  return (await one(db, FIND_CLAIMABLE_IMAGE, p))?.claimable ?? false;
}
