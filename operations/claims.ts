/**
 * Claims: leasing the next image (batched, retried, diagnosed). Renewing and releasing a claim,
 * and the error for one its caller cannot use, are operations/leases.ts's (kind `annotate`).
 */
import { Batcher } from "../lib/db/batcher.ts";
import { isInputError } from "../lib/db/pool.ts";
import { ApiError } from "../lib/http/errors.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import type { MediaJson } from "../schemas/media.ts";
import * as q from "../sql/claims/queries.ts";
import { type Caller, requireDataset } from "./datasets.ts";
import { mediaOperations } from "./media.ts";

/**
 * How often a claim is tried before the answer is 503 busy, and the pause before each try. A
 * retry follows a lost race with the same user's concurrent first claim ('conflict': the next try
 * answers held), or an empty answer while claimable images exist but were all locked at that
 * instant by other statements (claims and submits in flight, a setPriorities batch).
 */
const CLAIM_RETRY_MS = [0, 2, 10, 25, 50, 100];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A claim that is being handed out (new, or the one the caller already holds), with media. */
export type Claimed = Exclude<q.ClaimOutcome, { state: "conflict" }> & { media: MediaJson };

/**
 * How many claims handed out by this process are remembered with their dataset
 * (takeClaimDataset): far more than the annotators one server serves at once; each entry is two
 * short strings.
 */
const REMEMBERED_CLAIMS = 10_000;

export interface ClaimOperations {
  /**
   * The caller's next image in the dataset (state `new`), or the live claim it already holds
   * there (`held`); `null` when nothing is left for it. 404 for an unknown dataset (or one the
   * caller may not see), 503 when the claimable images stayed locked through every try.
   * `origin`: the server's, for media URLs. `together`: the call arrives with the other calls
   * it could share a batch with (lib/db/batcher.ts submit), as createAnnotation with `next` does.
   */
  claimNext(
    datasetId: string,
    caller: Caller,
    origin: string,
    together?: boolean,
  ): Promise<Claimed | null>;
  /**
   * `n` annotators of the dataset were just answered (a submit batch) and are expected to claim
   * their next image at once: the claim lane waits for them under load (lib/db/batcher.ts expect).
   */
  expectClaims(datasetId: string, n: number): void;
  /**
   * The dataset of a claim this process handed out, forgotten once taken: lets
   * createAnnotation with `next` send the next claim right behind its submit (operations/
   * annotations.ts). undefined when not known here (another replica's claim, a restart, a
   * second submit of the claim); the caller then claims as claimNext does.
   */
  takeClaimDataset(claimId: string): string | undefined;
  /** A claim made by claimNextImages outside claimNext, handed out as claimNext hands one out. */
  handOut(
    outcome: Exclude<q.ClaimOutcome, { state: "conflict" }>,
    origin: string,
  ): Promise<Claimed>;
}

/** One per app (its Deps): every route that claims shares the batcher below. */
const perApp = new WeakMap<Deps, ClaimOperations>();

/**
 * The claim operations of the app built from `deps`: made once, so claimNextImage and
 * createAnnotation with `next` share one batcher and one memory of the claims handed out
 * (takeClaimDataset).
 */
export function claimOperations(deps: Deps): ClaimOperations {
  let ops = perApp.get(deps);
  if (!ops) {
    ops = makeClaimOperations(deps);
    perApp.set(deps, ops);
  }
  return ops;
}

function makeClaimOperations(deps: Deps): ClaimOperations {
  const { db, metrics } = deps;
  const media = mediaOperations(deps);
  const batchMax = deps.config.db.batchMax;
  // Claims of one dataset arriving while one runs go together as the next statement (one per
  // user: a user's second concurrent claim waits for the next). What the batch leaves undecided
  // runs the single statement.
  const batch = new Batcher({
    key: (claim: { datasetId: string; caller: Caller }) => claim.datasetId,
    exclusive: (claim) => [claim.caller.id],
    run: (datasetId, items) =>
      q.claimNextImages(db, {
        dataset_id: datasetId,
        user_ids: items.map((i) => i.caller.id),
        user_roles: items.map((i) => i.caller.role),
        after_claim_ids: null,
      }),
    maxSize: batchMax,
    maxInFlight: 1,
    lingerMs: deps.config.db.batchLingerMs,
    // The annotators a submit batch answered come back spread over 1.5-2 ms (the server writes
    // their answers one by one); waiting up to twice the linger for all of them keeps them in one
    // claim batch (decision 0020).
    expectMs: 2 * deps.config.db.batchLingerMs,
    runAlone: isInputError,
  });

  // Claim id -> dataset id, oldest first (a Map keeps insertion order).
  const claimDatasets = new Map<string, string>();
  const handOut = async (
    outcome: Exclude<q.ClaimOutcome, { state: "conflict" }>,
    origin: string,
  ): Promise<Claimed> => {
    if (outcome.state === "new") metrics.claims.inc();
    claimDatasets.delete(outcome.claim.id);
    claimDatasets.set(outcome.claim.id, outcome.claim.dataset_id);
    if (claimDatasets.size > REMEMBERED_CLAIMS) {
      claimDatasets.delete(claimDatasets.keys().next().value!);
    }
    // Signed once the lease is known, so the URL lives as long as the lease.
    return {
      ...outcome,
      media: await media.forImage(outcome.image, outcome.claim.expires_at, origin),
    };
  };

  return {
    expectClaims(datasetId, n) {
      batch.expect(datasetId, n);
    },

    takeClaimDataset(claimId) {
      const datasetId = claimDatasets.get(claimId);
      claimDatasets.delete(claimId);
      return datasetId;
    },

    handOut,

    async claimNext(datasetId, caller, origin, together = false) {
      const p = { dataset_id: datasetId, user_id: caller.id, caller_role: caller.role };
      for (const pause of CLAIM_RETRY_MS) {
        if (pause) await sleep(pause);
        const outcome =
          (!pause && batchMax ? await batch.submit({ datasetId, caller }, together) : undefined) ??
            await q.claimNextImage(db, p);
        if (!outcome) {
          // Nothing claimable, all of it locked, or no such dataset (or none the caller may
          // see): only the rare empty answer pays for telling which.
          if (await q.findClaimableImage(db, p)) continue;
          await requireDataset(db, datasetId, caller);
          return null;
        }
        if (outcome.state === "conflict") continue;
        return await handOut(outcome, origin);
      }
      throw new ApiError(
        503,
        "busy",
        "the claimable images stayed locked by other requests (or concurrent claims by this " +
          "user kept conflicting); retry",
      );
    },
  };
}
