/**
 * Writers at full speed, with a ledger of every answer: annotators (claim, then submit) and ML
 * clients (prediction batches with a version of their own, so each batch can be counted in the
 * database afterwards). Used where faults are injected (crash, db restart) to check afterwards
 * that what was acknowledged is there and what was refused is not half there.
 */
import type postgres from "postgres";
import { call, type Res, type User } from "../../testkit/api.ts";
import { sleep } from "../../testkit/time.ts";

export interface Submit {
  claimId: string;
  imageId: string;
  userId: string;
  /** Every answer to submitting this claim, in order (0: no answer). */
  statuses: number[];
  codes: string[];
  annotationId?: string;
}

export interface Batch {
  version: string;
  size: number;
  status: number;
  code?: string;
  created?: number;
}

export interface Ledger {
  submits: Map<string, Submit>;
  batches: Batch[];
  /** Every answer: [when (ms since start), status, ms taken, operation]. */
  answers: [number, number, number, string][];
  /** Answers that are never acceptable: 5xx other than 503, or a 4xx/5xx without the error shape. */
  bad: string[];
}

export function newLedger(): Ledger {
  return { submits: new Map(), batches: [], answers: [], bad: [] };
}

const t0 = performance.now();

function note(ledger: Ledger, op: string, res: Res) {
  ledger.answers.push([performance.now() - t0, res.status, res.ms, op]);
  if (res.status >= 500 && res.status !== 503) {
    ledger.bad.push(`${op}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
  }
  if (res.status >= 400) {
    const b = res.body as { error?: { code?: unknown; message?: unknown } } | null;
    if (typeof b?.error?.code !== "string" || typeof b.error.message !== "string") {
      ledger.bad.push(`${op}: ${res.status} without the error shape: ${String(res.body)}`);
    }
  }
}

export interface LoopOptions {
  /** Servers to spread requests over (a request picks one at random). */
  bases: string[];
  stop: { now: boolean };
  ledger: Ledger;
  timeoutMs?: number;
}

const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)];

/**
 * Claim, submit, repeat, until the dataset is drained or `stop.now`. A submit with no answer is
 * retried with the same claim (the first may have committed: the retry must then say so, with
 * 409 claim_completed).
 */
export async function annotatorLoop(user: User, datasetId: string, opts: LoopOptions) {
  const { ledger, stop } = opts;
  const timeoutMs = opts.timeoutMs ?? 15_000;
  while (!stop.now) {
    const claim = await call(
      pick(opts.bases),
      user.token,
      "POST",
      `/api/v1/datasets/${datasetId}/claims`,
      undefined,
      { timeoutMs },
    );
    note(ledger, "claimNextImage", claim);
    if (claim.status === 204) return;
    if (claim.status !== 200 && claim.status !== 201) {
      await sleep(claim.status === 0 ? 100 : 50);
      continue;
    }
    const { id: claimId, image_id: imageId } = claim.body.claim;
    const submit: Submit = ledger.submits.get(claimId) ??
      { claimId, imageId, userId: user.id, statuses: [], codes: [] };
    ledger.submits.set(claimId, submit);
    for (let attempt = 0; attempt < 50 && !stop.now; attempt++) {
      const res = await call(
        pick(opts.bases),
        user.token,
        "POST",
        `/api/v1/images/${imageId}/annotations`,
        {
          claim_id: claimId,
          labels: ["cat"],
          shapes: [{ type: "point", label: "cat", x: 1, y: 1 }],
        },
        { timeoutMs },
      );
      note(ledger, "createAnnotation", res);
      submit.statuses.push(res.status);
      submit.codes.push(res.body?.error?.code ?? "");
      if (res.status === 201) submit.annotationId = res.body.id;
      // Retry only when the outcome is unknown or the service said "try again".
      if (res.status !== 0 && res.status !== 503) break;
      await sleep(100);
    }
  }
}

let batchSeq = 0;

/** Prediction batches of `size` on the dataset's images, each with a version of its own. */
export async function machineLoop(
  user: User,
  datasetId: string,
  images: string[],
  size: number,
  opts: LoopOptions,
) {
  const { ledger, stop } = opts;
  while (!stop.now) {
    const version = `b${Deno.pid}-${++batchSeq}`;
    const start = Math.floor(Math.random() * Math.max(1, images.length - size));
    const res = await call(
      pick(opts.bases),
      user.token,
      "POST",
      `/api/v1/datasets/${datasetId}/predictions`,
      {
        predictions: images.slice(start, start + size).map((id) => ({
          image_id: id,
          model: { name: "stress", version },
          confidence: 0.5,
          labels: ["dog"],
        })),
      },
      { timeoutMs: opts.timeoutMs ?? 15_000 },
    );
    note(ledger, "createPredictions", res);
    ledger.batches.push({
      version,
      size: Math.min(size, images.length - start),
      status: res.status,
      code: res.body?.error?.code,
      created: res.status === 200 ? res.body.created : undefined,
    });
    if (res.status !== 200) await sleep(res.status === 0 ? 100 : 50);
  }
}

/**
 * Checks the ledger against the database: every 201 annotation is there with its claim, every
 * refused submit (without a later 201 or claim_completed) wrote nothing, every 200 batch has all
 * its rows, every failed batch has none or all (all-or-nothing; an unanswered one may have
 * committed).
 */
export async function auditLedger(sql: postgres.Sql, ledger: Ledger): Promise<string[]> {
  const out: string[] = [];
  const rows = await sql.unsafe(
    `SELECT id::text, claim_id::text, author_id::text, image_id::text FROM annotations
     WHERE source = 'human'`,
  );
  const byClaim = new Map<string, { id: string; author_id: string; image_id: string }[]>();
  for (const r of rows) {
    const list = byClaim.get(r.claim_id) ?? [];
    list.push(r as never);
    byClaim.set(r.claim_id, list);
  }
  let acknowledged = 0;
  for (const s of ledger.submits.values()) {
    const found = byClaim.get(s.claimId) ?? [];
    const ok = s.statuses.includes(201);
    const completedBefore = s.codes.includes("claim_completed");
    if (ok) {
      acknowledged++;
      if (!found.some((a) => a.id === s.annotationId)) {
        out.push(`acknowledged annotation ${s.annotationId} (claim ${s.claimId}) is missing`);
      }
    }
    if (found.length > 1) out.push(`claim ${s.claimId} has ${found.length} annotations`);
    const unknown = s.statuses.some((st) => st === 0 || st === 503);
    if (!ok && !completedBefore && found.length && !unknown) {
      out.push(
        `claim ${s.claimId}: every submit was refused (${s.statuses.join(",")}) yet annotation ` +
          `${found[0].id} exists`,
      );
    }
    // A 503 "timeout" says the request was not done: it must not have been done later either.
    const timedOut = s.codes.includes("timeout");
    if (!ok && found.length && timedOut && !s.statuses.includes(0)) {
      out.push(
        `claim ${s.claimId}: answered 503 timeout (${s.statuses.join(",")}), yet annotation ` +
          `${found[0].id} was written`,
      );
    }
    if (completedBefore && !found.length) {
      out.push(`claim ${s.claimId}: the server said claim_completed, but no annotation exists`);
    }
  }
  const counts = await sql.unsafe(
    `SELECT model_version AS v, count(*)::int AS n FROM annotations
     WHERE source = 'machine' AND model_name = 'stress' GROUP BY model_version`,
  );
  const byVersion = new Map(counts.map((r) => [r.v as string, r.n as number]));
  for (const b of ledger.batches) {
    const n = byVersion.get(b.version) ?? 0;
    if (b.status === 200 && n !== b.created) {
      out.push(`batch ${b.version}: acknowledged ${b.created} rows, ${n} in the database`);
    }
    if (b.status !== 200 && n !== 0 && n !== b.size) {
      out.push(`batch ${b.version}: answered ${b.status}, half-written (${n} of ${b.size} rows)`);
    }
    if ((b.status >= 400 && b.status !== 503 || b.code === "timeout") && n !== 0) {
      out.push(`batch ${b.version}: refused with ${b.status}, yet ${n} rows were written`);
    }
  }
  if (acknowledged === 0) out.push("no annotation was acknowledged at all: the load did not run");
  return out;
}
