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
import type { CallerParams, Role } from "../users/queries.ts";

/** A claim as it stands, live or ended. */
export interface Claim {
  id: string;
  dataset_id: string;
  image_id: string;
  user_id: string;
  created_at: Date;
  expires_at: Date;
  /** Not yet completed, released or ended as expired. */
  active: boolean;
  /** `revoked`: ended because its holder may no longer see the dataset (revokeClaims). */
  end_reason: "completed" | "released" | "expired" | "revoked" | null;
  /** Active and unexpired: the claim holds its slot. */
  live: boolean;
}

/** A claim as claimNextImage hands it out (always active and live). */
export interface NewClaim {
  id: string;
  dataset_id: string;
  image_id: string;
  user_id: string;
  created_at: Date;
  expires_at: Date;
}

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

export interface ClaimIdParams extends CallerParams {
  id: string;
}
const GET_CLAIM = statement<ClaimIdParams, Claim>("claims/get_claim");

/** `null` when there is no such claim or the caller may not see its dataset. */
export function getClaim(db: Handle, p: ClaimIdParams): Promise<Claim | null> {
  return one(db, GET_CLAIM, p);
}

export interface HeldClaimParams {
  claim_id: string;
  /** The holder, who is the caller. */
  user_id: string;
  caller_role: Role;
}
/** A renewed claim, with its image's URI (the answer carries fresh media for it). */
export interface RenewedClaim extends Claim {
  image_uri: string;
}
const RENEW_CLAIM = statement<HeldClaimParams, RenewedClaim>("claims/renew_claim");

/**
 * Extends the user's active claim by the dataset's claim_ttl_seconds from now. `null`: no such
 * active claim of this user, it expired and someone else has taken its slot, or the user may no
 * longer see the dataset.
 */
export function renewClaim(db: Handle, p: HeldClaimParams): Promise<RenewedClaim | null> {
  return one(db, RENEW_CLAIM, p);
}

export interface ReleaseClaimParams extends CallerParams {
  claim_id: string;
  /** The holder: the caller, or another user when an admin releases it. */
  user_id: string;
  /** Also record that the holder skipped the image: it is never offered to them again. */
  skip?: boolean;
}
const RELEASE_CLAIM = statement<ReleaseClaimParams, Claim>("claims/release_claim");

/**
 * Ends the user's active claim and frees its image at once. `null`: no such active claim of
 * that user (an admin releasing another user's claim passes the holder, from getClaim), or the
 * caller may not see its dataset.
 */
export function releaseClaim(db: Handle, p: ReleaseClaimParams): Promise<Claim | null> {
  return one(db, RELEASE_CLAIM, { ...p, skip: p.skip ?? false });
}

export interface RevokeClaimsParams extends CallerParams {
  dataset_id: string;
  /** Only this user's claim; null: every holder's. */
  user_id: string | null;
}
const REVOKE_CLAIMS = statement<RevokeClaimsParams, { revoked: number }>("claims/revoke_claims");

/**
 * Ends as `revoked`, freeing their images at once, the active claims in the dataset of holders
 * (or of the one user) who may no longer see it. Run in the transaction that took it from them,
 * after the statement that did. Returns how many it ended.
 */
export async function revokeClaims(db: Handle, p: RevokeClaimsParams): Promise<number> {
  return (await one(db, REVOKE_CLAIMS, p))!.revoked;
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
