/**
 * Section 8: review. The annotator cycle on a dataset whose every image goes to review
 * (review_rate 1), against the raw-SQL ceiling in interleaved rounds: the submit that completes
 * an image also queues it for review, and its must-reach ratio is the headline's (the headline
 * cycle is review_rate 0). Then the review cycle: 16 reviewers loop claimNextReview ->
 * submitReview (accept) over the images those annotators completed.
 */
import { addMembers, call, createUser, expectStatus } from "../../testkit/api.ts";
import { checkpoint, type Ctx, fmt, log, metered, type Run, summary } from "../lib/context.ts";
import { cpuPerCycle, type Serving } from "../lib/cpu.ts";
import type { NaiveRun } from "../lib/pgbench.ts";
import { latency } from "../lib/stats.ts";
import { budget, runWorkers, split } from "../lib/workers.ts";
import type { ReviewJob, ReviewResult } from "../workers/http_review.ts";
import { httpCycle, type HttpRun, naiveCycle } from "./cycle.ts";
import { seedImages } from "./setup.ts";

export const REVIEWERS = 16;

interface ReviewRun extends Run {
  claimMs: number[];
  submitMs: number[];
  imageIds: string[];
}

async function reviewCycle(
  ctx: Ctx,
  datasetId: string,
  tokens: string[],
  reviews: number,
): Promise<ReviewRun> {
  const shared = budget(reviews);
  const workers = Math.min(ctx.opts.loadWorkers, tokens.length);
  const { wallS, results, cpu, wal } = await metered(ctx, () =>
    runWorkers<ReviewJob, ReviewResult>(
      new URL("../workers/http_review.ts", import.meta.url),
      split(tokens, workers).map((t) => ({
        base: ctx.server.url,
        datasetId,
        tokens: t,
        budget: shared,
      })),
    ));
  return {
    cycles: results.reduce((a, r) => a + r.cycles, 0),
    wallS,
    cpu,
    wal,
    claimMs: results.flatMap((r) => r.claimMs),
    submitMs: results.flatMap((r) => r.submitMs),
    imageIds: results.flatMap((r) => r.imageIds),
  };
}

export async function reviewSection(ctx: Ctx, images: number) {
  const { opts, sql } = ctx;
  const base = ctx.server.url;
  const C = opts.concurrency;
  const created = expectStatus(
    await call(base, ctx.adminToken, "POST", "/api/v1/datasets", {
      name: "bench-review",
      labels: ["car", "person"],
      review_rate: 1,
      access: opts.access,
    }),
    201,
  );
  const datasetId = created.body.id as string;
  await seedImages(sql, "images", datasetId, images);
  await sql`ANALYZE images`;
  const reviewerUsers = await Promise.all(
    Array.from(
      { length: REVIEWERS },
      (_, i) => createUser(base, ctx.adminToken, `bench-reviewer-${i}`, "reviewer"),
    ),
  );
  const reviewers = reviewerUsers.map((u) => u.token);
  // A `members` dataset (the default, as the other sections' datasets): the annotators and the
  // reviewers are members, so every claim, submit and review looks its caller up.
  if (opts.access === "members") {
    const annotatorIds = (await sql<{ id: string }[]>`
      SELECT id::text FROM users WHERE name LIKE 'bench-annotator-%'`).map((r) => r.id);
    await addMembers(base, ctx.adminToken, datasetId, [
      ...annotatorIds,
      ...reviewerUsers.map((u) => u.id),
    ]);
  }
  const perRound = Math.ceil(opts.cycles / opts.rounds);
  log(
    `\nreview: ${C} annotators on a review_rate 1 dataset of ${fmt(images)} images, ` +
      `${opts.rounds} rounds of ${fmt(perRound)} cycles, then ${REVIEWERS} reviewers`,
  );
  const ours: HttpRun[] = [];
  const ceiling: (NaiveRun & Run)[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    const order = r % 2 ? ["ceiling", "ours"] : ["ours", "ceiling"];
    for (const s of order) {
      if (s === "ceiling" && opts.skip.has("ceiling")) continue;
      await checkpoint(sql);
      if (s === "ours") {
        const run = await httpCycle(ctx, datasetId, C, perRound);
        ours.push(run);
        log(`  round ${r + 1} ours     ${fmt(run.cycles / run.wallS).padStart(6)} cycles/s`);
      } else {
        const run = await naiveCycle(ctx, C, perRound);
        ceiling.push(run);
        log(`  round ${r + 1} ceiling  ${fmt(run.cycles / run.wallS).padStart(6)} cycles/s`);
      }
    }
  }
  const waiting = ours.reduce((a, r) => a + r.cycles, 0);
  await checkpoint(sql);
  const reviewed = await reviewCycle(ctx, datasetId, reviewers, waiting);
  const perReview = cpuPerCycle("http", [reviewed]);
  log(
    `  reviews ${fmt(reviewed.cycles / reviewed.wallS).padStart(6)} reviews/s ` +
      `(${fmt(reviewed.cycles)} of ${fmt(waiting)} waiting), CPU ms/review: PostgreSQL ` +
      `${fmt(perReview.pg, 2)} + server ${fmt(perReview.server, 2)}`,
  );
  const naiveServing: Serving = ceiling[0]?.runner === "pgbench" ? "pgbench" : "driver";
  const [check] = await sql<{ twice: number; accepted: number }[]>`
    SELECT
      (SELECT count(*)::int FROM (
        SELECT image_id FROM ended_reviews WHERE dataset_id = ${datasetId}::bigint
          AND end_reason = 'completed' GROUP BY image_id HAVING count(*) > 1) t) AS twice,
      (SELECT count(*)::int FROM images WHERE dataset_id = ${datasetId}::bigint
        AND review = 'accepted') AS accepted`;
  return {
    figures: {
      annotate: { ...summary(ours, "http"), claim: latency(ours.flatMap((r) => r.claimMs)) },
      ceiling: ceiling.length ? summary(ceiling, naiveServing) : null,
      review: {
        ...summary([reviewed], "http"),
        reviewers: REVIEWERS,
        claim: latency(reviewed.claimMs),
        submit: latency(reviewed.submitMs),
        reviewed_twice: check.twice,
        accepted: check.accepted,
      },
    },
  };
}
