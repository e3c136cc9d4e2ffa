/**
 * Typed functions for the statements in this folder: one per file. A lease is a claim (kind
 * `annotate`: an annotator holds an image) or a review (kind `review`: a reviewer holds an image
 * waiting for review); the claim and review statements grant them (sql/claims, sql/reviews), the
 * statements here renew, release, revoke and look them up, for both kinds.
 */
import { one } from "../../lib/db/query.ts";
import type { Handle } from "../../lib/db/pool.ts";
import { statement } from "../../lib/db/statement.ts";
import type { CallerParams, Role } from "../users/queries.ts";

export type LeaseKind = "annotate" | "review";

export type ReviewDecision = "accept" | "fix" | "reject";

/** A lease as it stands, live or ended. */
export interface Lease {
  id: string;
  dataset_id: string;
  image_id: string;
  user_id: string;
  created_at: Date;
  expires_at: Date;
  /** Not yet completed or released, nor ended as expired or revoked. */
  active: boolean;
  /** `revoked`: ended because its holder may no longer see the dataset (revokeLeases). */
  end_reason: "completed" | "released" | "expired" | "revoked" | null;
  /** A completed review's decision; null otherwise. */
  decision: ReviewDecision | null;
  /** Active and unexpired: the lease holds its image. */
  live: boolean;
}

/** A lease as the claim and review statements hand it out (always active and live). */
export type NewLease = Pick<
  Lease,
  "id" | "dataset_id" | "image_id" | "user_id" | "created_at" | "expires_at"
>;

export interface LeaseIdParams extends CallerParams {
  kind: LeaseKind;
  id: string;
}
const GET_LEASE = statement<LeaseIdParams, Lease>("leases/get_lease");

/** `null` when there is no such lease or the caller may not see its dataset. */
export function getLease(db: Handle, p: LeaseIdParams): Promise<Lease | null> {
  return one(db, GET_LEASE, p);
}

export interface HeldLeaseParams {
  kind: LeaseKind;
  claim_id: string;
  /** The holder, who is the caller. */
  user_id: string;
  caller_role: Role;
}
/** A renewed lease, with its image's URI (the answer carries fresh media for it). */
export interface RenewedLease extends Lease {
  image_uri: string;
}
const RENEW_LEASE = statement<HeldLeaseParams, RenewedLease>("leases/renew_lease");

/**
 * Extends the user's active lease by the dataset's claim_ttl_seconds from now. `null`: no such
 * active lease of this user, it expired and someone else has taken its image (or slot), or the
 * user may no longer see the dataset.
 */
export function renewLease(db: Handle, p: HeldLeaseParams): Promise<RenewedLease | null> {
  return one(db, RENEW_LEASE, p);
}

export interface ReleaseLeaseParams extends CallerParams {
  kind: LeaseKind;
  claim_id: string;
  /** The holder: the caller, or another user when an admin releases it. */
  user_id: string;
  /** A claim's holder also skips the image: it is never offered to them again. */
  skip?: boolean;
}
const RELEASE_LEASE = statement<ReleaseLeaseParams, Lease>("leases/release_lease");

/**
 * Ends the user's active lease and gives its image back at once. `null`: no such active lease of
 * that user (an admin releasing another user's lease passes the holder, from getLease), or the
 * caller may not see its dataset.
 */
export function releaseLease(db: Handle, p: ReleaseLeaseParams): Promise<Lease | null> {
  return one(db, RELEASE_LEASE, { ...p, skip: p.skip ?? false });
}

export interface RevokeLeasesParams extends CallerParams {
  dataset_id: string;
  /** Only this user's leases; null: every holder's. */
  user_id: string | null;
}
const REVOKE_LEASES = statement<RevokeLeasesParams, { revoked: number }>("leases/revoke_leases");

/**
 * Ends as `revoked`, giving their images back at once, the active claims and reviews in the
 * dataset of holders (or of the one user) who may no longer see it. Run in the transaction that
 * took it from them, after the statement that did. Returns how many it ended.
 */
export async function revokeLeases(db: Handle, p: RevokeLeasesParams): Promise<number> {
  return (await one(db, REVOKE_LEASES, p))!.revoked;
}
