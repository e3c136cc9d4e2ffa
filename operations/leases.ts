/**
 * Leases of both kinds (claims: `annotate`, reviews: `review`): renewing and releasing one, and
 * the one error for a lease its caller cannot use. Granting them is the claim and review
 * operations' (operations/claims.ts, operations/reviews.ts).
 */
import { ApiError, notFound } from "../lib/http/errors.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import type { MediaJson } from "../schemas/media.ts";
import * as q from "../sql/leases/queries.ts";
import { callerParams, type Principal } from "../sql/users/queries.ts";
import { mediaOperations } from "./media.ts";

/** How each kind names its lease and its holders in errors (`claim_expired`, `review_…`). */
const WORDS: Record<q.LeaseKind, { noun: string; holder: string; taken: string }> = {
  annotate: {
    noun: "claim",
    holder: "another user",
    taken: "its image has been claimed by someone else",
  },
  review: {
    noun: "review",
    holder: "another reviewer",
    taken: "its image has been taken by another reviewer (or left the review queue)",
  },
};

/**
 * The error for a lease that `userId` could not use (renew, release or submit with): missing,
 * someone else's, ended, or expired with its image (or slot) taken by someone else since.
 */
export function leaseProblem(
  kind: q.LeaseKind,
  lease: q.Lease | null,
  id: string,
  userId: string,
): ApiError {
  const { noun, holder, taken } = WORDS[kind];
  if (!lease) return notFound(`${noun} ${id}`);
  if (lease.user_id !== userId) {
    return new ApiError(403, `${noun}_not_yours`, `${noun} ${id} is held by ${holder}`);
  }
  if (!lease.active) {
    const reason = lease.end_reason ?? "ended";
    return new ApiError(409, `${noun}_${reason}`, `${noun} ${id} has already been ${reason}`);
  }
  // Active but refused: it expired and someone else has taken its image (or slot) since.
  return new ApiError(409, `${noun}_expired`, `${noun} ${id} expired and ${taken}`);
}

export interface LeaseOperations {
  /** The lease with its new expiry and fresh media, or the leaseProblem. */
  renew(
    kind: q.LeaseKind,
    id: string,
    caller: Principal,
    origin: string,
  ): Promise<q.Lease & { media: MediaJson }>;
  /**
   * Ends the lease (its holder, or an admin for anyone's), or the leaseProblem. `skip` (claims):
   * the image is never offered to the claim's holder again (it stays claimable for everyone
   * else).
   */
  release(kind: q.LeaseKind, id: string, caller: Principal, skip?: boolean): Promise<void>;
}

export function leaseOperations(deps: Deps): LeaseOperations {
  const { db } = deps;
  const media = mediaOperations(deps);
  return {
    async renew(kind, id, caller, origin) {
      const renewed = await q.renewLease(db, {
        kind,
        claim_id: id,
        user_id: caller.id,
        caller_role: caller.role,
      });
      if (renewed) {
        const { image_uri, ...lease } = renewed;
        return {
          ...lease,
          media: await media.forImage({ uri: image_uri }, lease.expires_at, origin),
        };
      }
      const lease = await q.getLease(db, { kind, id, ...callerParams(caller) });
      throw leaseProblem(kind, lease, id, caller.id);
    },

    async release(kind, id, caller, skip = false) {
      const who = callerParams(caller);
      // An admin may release anyone's lease: released as its holder, found first.
      const holder = caller.role === "admin"
        ? (await q.getLease(db, { kind, id, ...who }))?.user_id ?? caller.id
        : caller.id;
      const released = await q.releaseLease(db, {
        kind,
        claim_id: id,
        user_id: holder,
        skip,
        ...who,
      });
      if (released) return;
      throw leaseProblem(kind, await q.getLease(db, { kind, id, ...who }), id, holder);
    },
  };
}
