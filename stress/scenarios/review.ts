/**
 * Review under load: annotators and reviewers at full speed on two server processes sharing one
 * database, on a dataset whose every image goes to review (review_rate 1), while one server is
 * killed with SIGKILL and started again. Reviewers accept about 70 % of what they see, fix 15 %
 * and reject 15 %; annotators keep claiming, so rejected images come back to them. Afterwards,
 * with the annotators left to drain the rework:
 *
 * - no image reviewed twice: two reviews of one image never overlap in time, and every review of
 *   an image but its last is a reject followed by a new human annotation;
 * - no accepted annotation lost: every decision answered 200 is in the database as answered (an
 *   accepted or fixed image is accepted, with its accepted annotations; a rejected one has the
 *   rejected annotations), and every accepted image has a current accepted annotation;
 * - every rejected image re-annotated: each rejected annotation has a later human annotation of
 *   its image.
 * Loopback only, bounded in time and count.
 */
import {
  addMembers,
  adminToken,
  call,
  createUsers,
  expectStatus,
  type User,
} from "../../testkit/api.ts";
import { killHard, type ServerProcess, startLoadServer } from "../../testkit/process.ts";
import { sleep } from "../../testkit/time.ts";
import { type Ctx, fmt, type Result, type Scenario, sqlFor } from "../lib/scenario.ts";
import { dedupe } from "./db_restart.ts";

const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)];

/** A decision the server answered 200 to. */
interface Decided {
  reviewId: string;
  imageId: string;
  decision: "accept" | "fix" | "reject";
  authorIds: string[];
  fixId?: string;
}

interface Tally {
  claims: number;
  submits: number;
  reviews: number;
  decided: Decided[];
  /** Answers never acceptable: a 5xx other than 503. */
  bad: string[];
}

/** Claims and submits until `stop`; an empty queue waits (rework may come back). */
async function annotate(
  user: User,
  datasetId: string,
  bases: string[],
  stop: { now: boolean },
  tally: Tally,
) {
  while (!stop.now) {
    const c = await call(pick(bases), user.token, "POST", `/api/v1/datasets/${datasetId}/claims`);
    if (c.status >= 500 && c.status !== 503) tally.bad.push(`claim: ${c.status}`);
    if (c.status !== 200 && c.status !== 201) {
      await sleep(c.status === 204 ? 100 : 50);
      continue;
    }
    tally.claims++;
    for (let attempt = 0; attempt < 20 && !stop.now; attempt++) {
      const s = await call(
        pick(bases),
        user.token,
        "POST",
        `/api/v1/images/${c.body.image.id}/annotations`,
        {
          claim_id: c.body.claim.id,
          labels: ["cat"],
        },
      );
      if (s.status >= 500 && s.status !== 503) tally.bad.push(`submit: ${s.status}`);
      if (s.status === 201) tally.submits++;
      if (s.status !== 0 && s.status !== 503) break;
      await sleep(100);
    }
  }
}

/** Reviews until `stop`: accept, fix or reject what the queue hands out. */
async function review(
  user: User,
  datasetId: string,
  bases: string[],
  stop: { now: boolean },
  tally: Tally,
) {
  while (!stop.now) {
    const r = await call(pick(bases), user.token, "POST", `/api/v1/datasets/${datasetId}/reviews`);
    if (r.status >= 500 && r.status !== 503) tally.bad.push(`claimNextReview: ${r.status}`);
    if (r.status !== 200 && r.status !== 201) {
      await sleep(r.status === 204 ? 50 : 50);
      continue;
    }
    tally.reviews++;
    const roll = Math.random();
    const decision = roll < 0.7 ? "accept" : roll < 0.85 ? "fix" : "reject";
    const body = {
      claim_id: r.body.review.id,
      decision,
      ...(decision === "reject" ? { comment: "redo" } : {}),
      ...(decision === "fix" ? { annotation: { labels: ["dog"] } } : {}),
    };
    for (let attempt = 0; attempt < 20 && !stop.now; attempt++) {
      const s = await call(
        pick(bases),
        user.token,
        "POST",
        `/api/v1/images/${r.body.image.id}/reviews`,
        body,
      );
      if (s.status >= 500 && s.status !== 503) tally.bad.push(`submitReview: ${s.status}`);
      if (s.status === 200) {
        tally.decided.push({
          reviewId: r.body.review.id,
          imageId: r.body.image.id,
          decision,
          authorIds: s.body.author_ids,
          fixId: s.body.fix?.id,
        });
      }
      if (s.status !== 0 && s.status !== 503) break;
      await sleep(100);
    }
  }
}

export const reviewScenario: Scenario = {
  name: "review",
  async run(ctx: Ctx): Promise<Result> {
    const seconds = ctx.quick ? 8 : 20;
    const images = ctx.quick ? 600 : 3_000;
    const [annotators, reviewers] = ctx.quick ? [8, 4] : [16, 8];
    const url = await ctx.database("review");
    const servers: ServerProcess[] = await Promise.all([
      startLoadServer({ databaseUrl: url }),
      startLoadServer({ databaseUrl: url }),
    ]);
    const violations: string[] = [];
    const notes: string[] = [];
    try {
      const base = servers[0].url;
      const admin = await adminToken(base);
      const ds = expectStatus(
        await call(base, admin, "POST", "/api/v1/datasets", {
          name: "review",
          labels: ["cat", "dog"],
          review_rate: 1,
          // Its annotators and reviewers are made members: every claim, submit and review checks
          // the caller's membership, as in a team's dataset.
          access: "members",
          // Short leases, so leases lost with the killed server come back within the run.
          claim_ttl_seconds: 30,
        }),
        201,
      ).body.id as string;
      for (let i = 0; i < images; i += 5_000) {
        expectStatus(
          await call(base, admin, "POST", `/api/v1/datasets/${ds}/images`, {
            images: Array.from({ length: Math.min(5_000, images - i) }, (_, j) => ({
              uri: `s3://stress/review/${i + j}.jpg`,
              priority: (i + j) % 5,
            })),
          }),
          200,
        );
      }
      const anns = await createUsers(base, admin, "rv-a", "annotator", annotators);
      const revs = await createUsers(base, admin, "rv-r", "reviewer", reviewers);
      await addMembers(base, admin, ds, [...anns, ...revs].map((u) => u.id));
      const tally: Tally = { claims: 0, submits: 0, reviews: 0, decided: [], bad: [] };
      const stopReviews = { now: false };
      const stopAnnotators = { now: false };
      const bases = servers.map((s) => s.url);
      const annotating = anns.map((u) => annotate(u, ds, bases, stopAnnotators, tally));
      const reviewing = revs.map((u) => review(u, ds, bases, stopReviews, tally));
      await sleep((seconds / 2) * 1000);
      const port = servers[1].port;
      await killHard(servers[1]);
      servers[1] = await startLoadServer({ databaseUrl: url, port });
      await sleep((seconds / 2) * 1000);
      stopReviews.now = true;
      await Promise.all(reviewing);

      // The annotators drain the rework (reserved for its annotators for a claim TTL, then
      // anyone's), within a bound.
      const sql = sqlFor(url);
      try {
        const deadline = performance.now() + (ctx.quick ? 60_000 : 90_000);
        let waiting = -1;
        while (performance.now() < deadline) {
          [{ n: waiting }] = await sql<{ n: number }[]>`
            SELECT count(*)::int AS n FROM images
            WHERE dataset_id = ${ds}::bigint AND cardinality(rework_for) > 0 AND NOT done`;
          if (waiting === 0) break;
          await sleep(250);
        }
        stopAnnotators.now = true;
        await Promise.all(annotating);
        if (waiting) violations.push(`${waiting} rejected images still waiting for rework`);

        // No image reviewed twice: overlapping reviews, or a review after a non-reject.
        const overlapping = await sql`
          SELECT a.image_id::text, a.claim_id::text AS a, b.claim_id::text AS b
          FROM ended_reviews a JOIN ended_reviews b
            ON b.image_id = a.image_id AND b.claim_id > a.claim_id
          WHERE a.end_reason = 'completed' AND b.end_reason = 'completed'
            AND (a.decision <> 'reject' OR b.claimed_at < a.ended_at)
          LIMIT 10`;
        for (const r of overlapping) {
          violations.push(`image ${r.image_id} reviewed twice: reviews ${r.a} and ${r.b}`);
        }
        const unearned = await sql`
          SELECT a.image_id::text, a.claim_id::text AS review_id
          FROM ended_reviews a JOIN ended_reviews b
            ON b.image_id = a.image_id AND b.claim_id > a.claim_id
          WHERE a.end_reason = 'completed' AND b.end_reason = 'completed'
            AND NOT EXISTS (
              SELECT FROM annotations n
              WHERE n.image_id = a.image_id AND n.source = 'human'
                AND n.created_at > a.ended_at AND n.created_at < b.claimed_at
            )
          LIMIT 10`;
        for (const r of unearned) {
          violations.push(
            `image ${r.image_id} reviewed again after review ${r.review_id} ` +
              "with no new annotation between",
          );
        }

        // Every 200 decision as answered.
        const rows = await sql<
          { id: string; image_id: string; author_id: string; status: string; reviewed_by: string }[]
        >`SELECT id::text, image_id::text, author_id::text, status, reviewed_by::text
          FROM annotations WHERE dataset_id = ${ds}::bigint AND source = 'human'`;
        type Row = (typeof rows)[number];
        const byImage = new Map<string, Row[]>();
        for (const r of rows) byImage.set(r.image_id, [...(byImage.get(r.image_id) ?? []), r]);
        const reviewState = new Map(
          (await sql<{ id: string; review: string | null }[]>`
            SELECT id::text, review FROM images WHERE dataset_id = ${ds}::bigint`)
            .map((r) => [r.id, r.review]),
        );
        for (const d of tally.decided) {
          const list = byImage.get(d.imageId) ?? [];
          if (d.decision === "reject") {
            if (!list.some((a) => a.status === "rejected")) {
              violations.push(
                `reject of image ${d.imageId} (review ${d.reviewId}) left no ` +
                  "rejected annotation",
              );
            }
            continue;
          }
          if (reviewState.get(d.imageId) !== "accepted") {
            violations.push(
              `${d.decision} of image ${d.imageId} (review ${d.reviewId}) answered ` +
                `200, but the image is ${reviewState.get(d.imageId)}`,
            );
          }
          if (d.fixId && !list.some((a) => a.id === d.fixId && a.status === "accepted")) {
            violations.push(`fix ${d.fixId} of image ${d.imageId} is not accepted`);
          }
          if (!list.some((a) => a.status === "accepted")) {
            violations.push(`accepted image ${d.imageId} has no accepted annotation`);
          }
        }
        const [{ n: lost }] = await sql<{ n: number }[]>`
          SELECT count(*)::int AS n FROM images i
          WHERE i.dataset_id = ${ds}::bigint AND i.review = 'accepted'
            AND NOT EXISTS (SELECT FROM annotations a WHERE a.image_id = i.id
              AND a.source = 'human' AND a.status = 'accepted')`;
        if (lost) violations.push(`${lost} accepted images without an accepted annotation`);

        // Every rejected annotation's image annotated again after it.
        const notRedone = await sql`
          SELECT r.id::text, r.image_id::text FROM annotations r
          WHERE r.dataset_id = ${ds}::bigint AND r.status = 'rejected'
            AND NOT EXISTS (SELECT FROM annotations n WHERE n.image_id = r.image_id
              AND n.source = 'human' AND n.id > r.id)
          LIMIT 10`;
        for (const r of notRedone) {
          violations.push(`rejected annotation ${r.id} of image ${r.image_id} never re-done`);
        }
        const [counts] = await sql<{ accepted: number; rejects: number; reviews: number }[]>`
          SELECT count(*) FILTER (WHERE decision IN ('accept', 'fix'))::int AS accepted,
            count(*) FILTER (WHERE decision = 'reject')::int AS rejects,
            count(*)::int AS reviews
          FROM ended_reviews WHERE dataset_id = ${ds}::bigint AND end_reason = 'completed'`;
        notes.push(
          `review: ${fmt(counts.reviews)} reviews (${fmt(counts.accepted)} accepted or fixed, ` +
            `${fmt(counts.rejects)} rejected), ${fmt(tally.submits)} annotations`,
        );
        if (counts.reviews === 0) violations.push("no review completed: the load did not run");
      } finally {
        await sql.end();
      }
      violations.push(...tally.bad.slice(0, 10));
      return {
        test: "review: no image reviewed twice",
        load: `${annotators} annotators + ${reviewers} reviewers, 2 servers, ` +
          `${fmt(images)} images, review_rate 1`,
        faults: "kill -9 of a server",
        violations: dedupe(violations),
        notes,
      };
    } finally {
      for (const s of servers) await killHard(s);
    }
  },
};
