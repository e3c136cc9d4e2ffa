/**
 * Annotations: a human one (with a claim, batched with other submits) or a machine one, chosen by
 * the caller's role and never by the body; predictions in bulk; one image's list. Content the
 * statements refuse (labels outside the dataset's, shapes outside the image) is diagnosed here.
 */
import { Batcher } from "../lib/db/batcher.ts";
import { isInputError, isPgError } from "../lib/db/pool.ts";
import {
  ApiError,
  type ErrorDetail,
  invalidField,
  notFound,
  toErrorResponse,
} from "../lib/http/errors.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import * as q from "../sql/annotations/queries.ts";
import { findImageSizes, getAnnotationTarget, getImage } from "../sql/images/queries.ts";
import { getLease } from "../sql/leases/queries.ts";
import { getReviewTarget } from "../sql/reviews/queries.ts";
import { callerParams, type Principal } from "../sql/users/queries.ts";
import { claimNextImages, type ClaimOutcome } from "../sql/claims/queries.ts";
import { type Claimed, claimOperations } from "./claims.ts";
import { type Caller, requireDataset } from "./datasets.ts";
import { type ImageRef, refsAt } from "./images.ts";
import { leaseProblem } from "./leases.ts";

/**
 * Runs a statement that writes predictions again when a concurrent push of the same model to the
 * same image committed first (the unique violation of annotations_current_prediction_key: the
 * statement's snapshot did not see that push, so it could not supersede it). The next run's
 * snapshot does. After the last try: 503 busy.
 */
async function retryPredictionRace<T>(write: () => Promise<T>): Promise<T> {
  for (const pause of [0, 5, 20, 50]) {
    if (pause) await new Promise((resolve) => setTimeout(resolve, pause));
    try {
      return await write();
    } catch (e) {
      const raced = isPgError(e) && e.code === "23505" &&
        e.constraint_name === "annotations_current_prediction_key";
      if (!raced) throw e;
    }
  }
  throw new ApiError(503, "busy", "concurrent pushes of the same model kept conflicting; retry");
}

/** A createAnnotation body, validated. */
export interface AnnotationInput {
  claim_id?: string;
  labels?: string[];
  shapes?: q.Shape[];
  model?: q.Model;
  confidence?: number;
  /** Claim the caller's next image once the annotation is saved (createAndClaimNext). */
  next?: boolean;
}

/** An annotation, and the claim made after it was saved. */
export interface AnnotatedAndNext {
  annotation: q.Annotation;
  /** null: nothing is left for the caller, or (with nextError) claiming failed. */
  next: Claimed | null;
  /** Why claiming failed after the annotation was saved (a 503 `busy`, …). */
  nextError?: { code: string; message: string };
}

/** A submit the batch runs; `nextIn`: the claim's dataset, when a claim is to follow it. */
type Submit = q.ClaimedHumanAnnotation & { nextIn?: string };

/** A saved annotation, and the claim made right behind it (submitThenClaim), if any. */
interface Submitted {
  annotation: q.Annotation;
  /** Resolves to the claim's outcome, or undefined when none was made. */
  next?: Promise<ClaimOutcome | undefined>;
}

interface Size {
  width: number | null;
  height: number | null;
}

/** Problems with labels and shapes, as details with `prefix` paths (empty when there are none). */
export function checkContent(
  body: { labels?: string[]; shapes?: q.Shape[] },
  vocabulary: ReadonlySet<string>,
  size: Size,
  prefix: string,
): ErrorDetail[] {
  const problems: ErrorDetail[] = [];
  body.labels?.forEach((label, i) => {
    if (!vocabulary.has(label)) {
      problems.push({
        path: `${prefix}.labels.${i}`,
        message: `"${label}" is not a dataset label`,
      });
    }
  });
  body.shapes?.forEach((shape, i) => {
    const at = `${prefix}.shapes.${i}`;
    if (!vocabulary.has(shape.label)) {
      problems.push({ path: `${at}.label`, message: `"${shape.label}" is not a dataset label` });
    }
    const { width: w, height: h } = size;
    if (w === null && h === null) return;
    // Each known dimension on its own, as the create statements check them.
    const outside = (x: number, y: number) => (w !== null && x > w) || (h !== null && y > h);
    if (
      (shape.type === "bbox" && outside(shape.x + shape.width, shape.y + shape.height)) ||
      (shape.type === "point" && outside(shape.x, shape.y)) ||
      (shape.type === "polygon" && shape.points.some(([x, y]) => outside(x, y)))
    ) {
      problems.push({ path: at, message: `lies outside the ${w ?? "?"}x${h ?? "?"} image` });
    }
  });
  return problems;
}

/** A 422 for the first problems found, if any. */
export function rejectContent(problems: ErrorDetail[]): void {
  if (!problems.length) return;
  const outside = problems.some((p) => p.message.startsWith("lies outside"));
  const labels = problems.some((p) => p.message.endsWith("is not a dataset label"));
  throw new ApiError(
    422,
    labels ? "unknown_label" : outside ? "out_of_bounds" : "invalid_annotation",
    `${problems[0].path}: ${problems[0].message}`,
    problems.slice(0, 50),
  );
}

/** The body rules that depend on the caller's role. */
function checkRole(body: AnnotationInput, caller: Principal): void {
  if (caller.role === "machine") {
    if (!body.model) throw invalidField("body.model", "required for a machine annotation");
    if (body.next) throw invalidField("body.next", "machines do not claim images");
    if (body.claim_id !== undefined) {
      throw invalidField("body.claim_id", "machines annotate without claims");
    }
    return;
  }
  if (body.model) throw invalidField("body.model", "only machines name a model");
  if (body.confidence !== undefined) {
    throw invalidField("body.confidence", "only machine annotations carry a confidence");
  }
  if ((caller.role === "annotator" || caller.role === "reviewer") && body.claim_id === undefined) {
    throw invalidField("body.claim_id", "required: claim the image first (claimNextImage)");
  }
}

export interface AnnotationOperations {
  /** A human annotation for annotators and admins, a machine one for machines. */
  create(imageId: string, body: AnnotationInput, caller: Principal): Promise<q.Annotation>;
  /**
   * create, then, once the annotation is saved, the caller's next claim in its dataset, as
   * claimNextImage would answer it: a submit and a claim in one request. The claim comes after
   * the submit has completed the caller's claim, so an annotator still holds one live claim at
   * a time. A claim that fails then (503 busy, …) does not undo the annotation: it is answered
   * with `next` null and `nextError`. `origin`: the server's, for media URLs.
   */
  createAndClaimNext(
    imageId: string,
    body: AnnotationInput,
    caller: Principal,
    origin: string,
  ): Promise<AnnotatedAndNext>;
  /** Up to 10,000 machine annotations, validated as a whole: one bad item writes nothing. */
  createPredictions(
    datasetId: string,
    predictions: q.NewPrediction[],
    caller: Principal,
  ): Promise<{ created: number; not_found: ImageRef[] }>;
  /** The image's current annotations, or with `history` all of them (404 for an unknown image). */
  listForImage(
    imageId: string,
    source: q.AnnotationSource | null,
    history: boolean,
    caller: Caller,
  ): Promise<q.Annotation[]>;
  /** The author's new version of their submitted annotation (the old one superseded). */
  amend(
    annotationId: string,
    content: { labels: string[]; shapes: q.Shape[] },
    caller: Principal,
  ): Promise<q.Annotation>;
}

export function annotationOperations(deps: Deps): AnnotationOperations {
  const { db, metrics } = deps;
  const claims = claimOperations(deps);
  const batchMax = deps.config.db.batchMax;
  // Annotators' submits arriving while one runs go together as the next statement (never two of
  // one user or one image). What the batch refuses runs the single statement, which refuses it
  // again or, if things changed meanwhile, accepts it; either way as if alone.
  const submits = new Batcher({
    key: () => "",
    exclusive: (a: Submit) => [`user ${a.user_id}`, `image ${a.image_id}`],
    run: async (_key, items) => {
      const behind = items.filter((i) => i.nextIn !== undefined);
      const answers: (Submitted | undefined)[] = behind.length
        ? await submitThenClaim(items, behind)
        : (await q.createHumanAnnotations(db, items)).map((a) => a && { annotation: a });
      // The other annotators answered here claim their next image right away: their datasets'
      // claim lanes wait for them (lib/db/batcher.ts expect).
      const answered = new Map<string, number>();
      for (const a of answers) {
        if (!a || a.next) continue;
        const { dataset_id } = a.annotation;
        answered.set(dataset_id, (answered.get(dataset_id) ?? 0) + 1);
      }
      for (const [datasetId, n] of answered) claims.expectClaims(datasetId, n);
      return answers;
    },
    maxSize: batchMax,
    maxInFlight: 1,
    lingerMs: deps.config.db.batchLingerMs,
    runAlone: isInputError,
  });

  /**
   * The submit batch and, right behind it on the same connection, the next claims of the submits
   * that asked for one: one claimNextImages per dataset, which PostgreSQL runs as soon as the
   * submit has committed, with no round trip through the server in between. A claim is made only
   * for a caller whose submit completed the claim it sent (after_claim_ids); for the others
   * nothing is written, and their `next` is undefined.
   */
  async function submitThenClaim(items: Submit[], behind: Submit[]) {
    const conn = await db.reserve();
    const claimsMade: Promise<unknown>[] = [];
    try {
      // Not awaited before the claims are sent: postgres.js writes them behind it.
      const saved = q.createHumanAnnotations(conn, items);
      const next = new Map<Submit, Promise<ClaimOutcome | undefined>>();
      const byDataset = Map.groupBy(behind, (i) => i.nextIn!);
      for (const [datasetId, group] of byDataset) {
        const made = claimNextImages(conn, {
          dataset_id: datasetId,
          user_ids: group.map((i) => i.user_id),
          user_roles: group.map((i) => i.caller_role),
          after_claim_ids: group.map((i) => i.claim_id),
        }).catch(() => []); // each caller then claims as claimNext does
        claimsMade.push(made);
        group.forEach((item, n) => next.set(item, made.then((outcomes) => outcomes[n])));
      }
      const annotations = await saved;
      return annotations.map((a, i) => a && { annotation: a, next: next.get(items[i]) });
    } finally {
      Promise.all(claimsMade).finally(() => conn.release());
    }
  }

  /** A human annotation saved, with the claim made behind it when one was asked for. */
  const createHuman = async (
    a: q.NewHumanAnnotation,
    nextIn?: string,
  ): Promise<Submitted | null> => {
    const { claim_id } = a;
    const batched = claim_id !== null && batchMax
      ? await submits.submit({ ...a, claim_id, nextIn })
      : undefined;
    if (batched) return batched;
    const annotation = await q.createHumanAnnotation(db, a);
    return annotation && { annotation };
  };

  /** Why a valid-looking annotation was refused: 404, 422, or the claim's problem. */
  async function diagnose(
    imageId: string,
    body: AnnotationInput,
    caller: Principal,
  ): Promise<never> {
    const who = callerParams(caller);
    const target = await getAnnotationTarget(db, { image_id: imageId, ...who });
    if (!target) throw notFound(`image ${imageId}`);
    rejectContent(checkContent(body, new Set(target.labels), target, "body"));
    if (body.claim_id === undefined) {
      // Content and image fine, yet refused: the image went away or changed meanwhile.
      throw new ApiError(409, "conflict", `image ${imageId} changed meanwhile; retry`);
    }
    const claimId = body.claim_id;
    const claim = await getLease(db, { kind: "annotate", id: claimId, ...who });
    if (claim && claim.user_id === caller.id && claim.image_id !== imageId) {
      throw new ApiError(
        409,
        "claim_mismatch",
        `claim ${claimId} is for image ${claim.image_id}, not image ${imageId}`,
      );
    }
    throw leaseProblem("annotate", claim, claimId, caller.id);
  }

  /**
   * create, and the claim made right behind the submit when `nextIn` (the claim's dataset) is
   * given and the submit went in a batch.
   */
  async function save(
    imageId: string,
    body: AnnotationInput,
    caller: Principal,
    nextIn?: string,
  ): Promise<Submitted> {
    checkRole(body, caller);
    const content = { labels: body.labels ?? [], shapes: body.shapes ?? [] };
    // One round trip when all is well: the statements check labels and bounds themselves, and
    // only a refusal pays for finding out why.
    const saved = caller.role === "machine"
      ? await retryPredictionRace(() =>
        q.createMachineAnnotation(db, {
          image_id: imageId,
          author_id: caller.id,
          caller_role: caller.role,
          model: body.model!,
          confidence: body.confidence ?? null,
          ...content,
        })
      ).then((annotation) => annotation && { annotation })
      : await createHuman({
        claim_id: body.claim_id ?? null,
        image_id: imageId,
        user_id: caller.id,
        caller_role: caller.role,
        ...content,
      }, nextIn);
    if (!saved) return await diagnose(imageId, body, caller);
    metrics.annotations.inc({ source: saved.annotation.source });
    return saved;
  }

  const ops: AnnotationOperations = {
    async create(imageId, body, caller) {
      return (await save(imageId, body, caller)).annotation;
    },

    async createAndClaimNext(imageId, body, caller, origin) {
      // Known here when this process handed the claim out: the next claim then goes right behind
      // the submit (submitThenClaim).
      const nextIn = body.claim_id === undefined
        ? undefined
        : claims.takeClaimDataset(body.claim_id);
      const { annotation, next: behind } = await save(imageId, body, caller, nextIn);
      try {
        const made = await behind;
        return {
          annotation,
          next: made && made.state !== "conflict"
            ? await claims.handOut(made, origin)
            // Together: the submit batch released its callers at once, and their next claims
            // arrive at the claim lane in this same turn, all the company they will have;
            // waiting DB_BATCH_LINGER_MS for more cost the fused cycle 15 % of its throughput
            // (bench/experiments/cycle_ab.ts --client fused, decision 0019).
            : await claims.claimNext(annotation.dataset_id, caller, origin, true),
        };
      } catch (e) {
        // The annotation is saved whatever happens now: a refusal or an outage of the claim is
        // reported beside it, never as the request's failure (a resubmit would be 409
        // claim_completed). A bug (a 500) still fails the request, so it is seen and logged.
        const { status, body: failed } = toErrorResponse(e);
        if (status >= 500 && status !== 503) throw e;
        const { code, message } = failed.error;
        return { annotation, next: null, nextError: { code, message } };
      }
    },

    async createPredictions(datasetId, predictions, caller) {
      const dataset = await requireDataset(db, datasetId, caller);
      const vocabulary = new Set(dataset.labels);
      const withShapes = predictions.filter((p) => p.shapes.length);
      const sizes = withShapes.length
        ? await findImageSizes(db, {
          dataset_id: datasetId,
          ids: withShapes.flatMap((p) => p.image_id ?? []),
          external_ids: withShapes.flatMap((p) => p.external_id ?? []),
          ...callerParams(caller),
        })
        : [];
      const byId = new Map(sizes.map((s) => [s.id, s]));
      const byExternal = new Map(sizes.map((s) => [s.external_id, s]));
      const unknown: Size = { width: null, height: null };
      rejectContent(predictions.flatMap((p, i) => {
        const size = (p.image_id !== undefined
          ? byId.get(p.image_id)
          : byExternal.get(p.external_id ?? null)) ?? unknown;
        return checkContent(p, vocabulary, size, `body.predictions.${i}`);
      }));
      const result = await retryPredictionRace(() =>
        q.createPredictions(db, datasetId, caller, predictions)
      );
      // Gone from the caller's sight since requireDataset: as if it had been deleted.
      if (!result) throw notFound(`dataset ${datasetId}`);
      metrics.annotations.inc({ source: "machine" }, result.created);
      return { created: result.created, not_found: refsAt(predictions, result.not_found) };
    },

    async listForImage(imageId, source, history, caller) {
      const who = callerParams(caller);
      if (!(await getImage(db, { id: imageId, ...who }))) throw notFound(`image ${imageId}`);
      return await q.listImageAnnotations(db, {
        image_id: imageId,
        source,
        statuses: history ? [...q.ANNOTATION_STATUSES] : q.CURRENT_STATUSES,
        ...who,
      });
    },

    async amend(annotationId, content, caller) {
      const amended = await q.amendAnnotation(db, {
        annotation_id: annotationId,
        user_id: caller.id,
        caller_role: caller.role,
        ...content,
      });
      if (amended) return amended;
      // Refused: find out why, most specific first.
      const original = await q.getAnnotation(db, { id: annotationId, ...callerParams(caller) });
      if (!original) throw notFound(`annotation ${annotationId}`);
      if (original.author_id !== caller.id || original.source !== "human") {
        throw new ApiError(
          403,
          "annotation_not_yours",
          `annotation ${annotationId} is another user's: only its author may amend it`,
        );
      }
      if (original.status !== "submitted") {
        throw new ApiError(
          409,
          "annotation_not_current",
          `annotation ${annotationId} is ${original.status}: only a submitted annotation can ` +
            "be amended",
        );
      }
      const target = await getReviewTarget(db, {
        image_id: original.image_id,
        user_id: caller.id,
        caller_role: caller.role,
      });
      if (!target) throw notFound(`annotation ${annotationId}`);
      if (target.review === "accepted" || target.review_lease_live) {
        throw new ApiError(
          409,
          "image_in_review",
          `image ${original.image_id} is being reviewed (or was accepted): it can no longer be ` +
            "amended",
        );
      }
      rejectContent(checkContent(content, new Set(target.labels), target, "body"));
      throw new ApiError(409, "conflict", `image ${original.image_id} changed meanwhile; retry`);
    },
  };
  return ops;
}
