/** Typed functions for the statements in this folder: one per file. */
import { type Handle, many, one, sqlFile } from "../../lib/db/query.ts";
import {
  type Annotation,
  annotationFromJson,
  type AnnotationJsonRow,
} from "../annotations/queries.ts";
import type { Image } from "../images/queries.ts";

export interface Claim {
  id: string;
  dataset_id: string;
  image_id: string;
  user_id: string;
  created_at: Date;
  expires_at: Date;
  /** Not yet completed, released or ended as expired. */
  active: boolean;
  end_reason: "completed" | "released" | "expired" | null;
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

export type ClaimOutcome =
  /** `held`: the caller's existing live claim, unchanged; `new`: just claimed. */
  | {
    state: "held" | "new";
    claim: NewClaim;
    image: Image;
    /** The image's latest machine annotation per model, by model name. */
    predictions: Annotation[];
  }
  /** Lost to a concurrent claim by the same caller: call again, which answers `held`. */
  | { state: "conflict" };

const CLAIM_NEXT_IMAGE = sqlFile("claims/claim_next_image");
const CLAIM_NEXT_IMAGES = sqlFile("claims/claim_next_images");
const GET_CLAIM = sqlFile("claims/get_claim");
const RENEW_CLAIM = sqlFile("claims/renew_claim");
const RELEASE_CLAIM = sqlFile("claims/release_claim");
const FIND_CLAIMABLE_IMAGE = sqlFile("claims/find_claimable_image");

interface ClaimNextImageRow extends Image {
  state: "held" | "new" | "conflict";
  claim_id: string;
  user_id: string;
  claim_created_at: Date;
  expires_at: Date;
  predictions: AnnotationJsonRow[];
}

type ClaimedRow = Omit<ClaimNextImageRow, "state"> & { state: string };
/** 'single': claim_next_images.sql left this user to claim_next_image.sql. */
type ClaimNextImagesRow = Omit<ClaimNextImageRow, "state"> & { state: "held" | "new" | "single" };

/**
 * Leases the next image of the dataset to `userId`, or returns the claim the user already holds
 * there (renewed if it had expired with its slot still free). `null`: nothing claimable for this
 * user at this instant (all of it may be locked: see findClaimableImage), or no such dataset.
 */
export async function claimNextImage(
  db: Handle,
  datasetId: string,
  userId: string,
): Promise<ClaimOutcome | null> {
  const row = await one<ClaimNextImageRow>(db, CLAIM_NEXT_IMAGE, [datasetId, userId]);
  if (!row) return null;
  if (row.state === "conflict") return { state: "conflict" };
  return claimOutcome(row, row.state);
}

/**
 * claimNextImage for several users of one dataset in one statement (lib/db/batcher.ts gathers
 * them; the ids distinct). Per user, in order: `held` or `new` as claimNextImage would answer,
 * or `undefined`: run claimNextImage for that user (claim_next_images.sql says when).
 */
export async function claimNextImages(
  db: Handle,
  datasetId: string,
  userIds: readonly string[],
): Promise<(ClaimOutcome | undefined)[]> {
  const rows = await many<ClaimNextImagesRow>(db, CLAIM_NEXT_IMAGES, [datasetId, userIds]);
  const byUser = new Map(rows.map((r) => [r.user_id, r]));
  return userIds.map((id) => {
    const row = byUser.get(id);
    return row && (row.state === "held" || row.state === "new")
      ? claimOutcome(row, row.state)
      : undefined;
  });
}

function claimOutcome(row: ClaimedRow, state: "held" | "new"): ClaimOutcome {
  const { state: _, claim_id, user_id, claim_created_at, expires_at, predictions, ...image } = row;
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
  };
}

export function getClaim(db: Handle, id: string): Promise<Claim | null> {
  return one<Claim>(db, GET_CLAIM, [id]);
}

/**
 * Extends the user's active claim by the dataset's claim_ttl_seconds from now. `null`: no such
 * active claim of this user, or it expired and someone else has taken its slot.
 */
export function renewClaim(db: Handle, claimId: string, userId: string): Promise<Claim | null> {
  return one<Claim>(db, RENEW_CLAIM, [claimId, userId]);
}

/**
 * Ends the user's active claim and frees its image at once. `null`: no such active claim of
 * that user (an admin releasing another user's claim passes the holder, from getClaim).
 */
export function releaseClaim(db: Handle, claimId: string, userId: string): Promise<Claim | null> {
  return one<Claim>(db, RELEASE_CLAIM, [claimId, userId]);
}

/**
 * Whether the dataset has an image the user could claim, ignoring row locks: after
 * claimNextImage found nothing, tells an empty queue from one whose rows were all locked.
 */
export async function findClaimableImage(
  db: Handle,
  datasetId: string,
  userId: string,
): Promise<boolean> {
  const row = await one<{ claimable: boolean }>(db, FIND_CLAIMABLE_IMAGE, [datasetId, userId]);
  return row?.claimable ?? false;
}
