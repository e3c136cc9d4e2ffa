/**
 * Two real server processes on one database (testkit/process.ts): 8 reviewers drain a review
 * queue of 60 images through both, each request going to either server, with re-claims,
 * renewals and releases mixed in. Afterwards every image was decided exactly once, and no two
 * review leases on one image were ever live at the same moment.
 */
import assert from "node:assert/strict";
import { createTestDb } from "./harness.ts";
import * as api from "../testkit/api.ts";
import { dbEnv, productionEnv, type ServerProcess, startServer } from "../testkit/process.ts";

const REVIEWERS = 8;
const IMAGES = 60;

/** testkit's `call` on one of the servers' API (a lost connection comes back as status 0). */
const call = (
  server: ServerProcess,
  token: string | null,
  method: string,
  path: string,
  body?: unknown,
) => api.call(`${server.url}/api/v1`, token, method, path, body);

async function userToken(
  servers: ServerProcess[],
  admin: string,
  name: string,
  role: string,
  n: number,
): Promise<string> {
  const created = await call(servers[n % 2], admin, "POST", "/users", { name, role });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const token = await call(servers[(n + 1) % 2], null, "POST", "/auth/token", {
    api_key: created.body.api_key,
  });
  assert.equal(token.status, 200);
  return token.body.access_token as string;
}

Deno.test("two server processes, 8 reviewers: each image decided once, never two leases at once", async () => {
  const tdb = await createTestDb(4);
  const servers: ServerProcess[] = [];
  try {
    const env = { ...productionEnv(), ...dbEnv(tdb.url), DB_POOL_MAX: "8" };
    servers.push(...await Promise.all([startServer(env), startServer(env)]));
    const [a, b] = servers;
    const admin = await api.adminToken(a);
    const ds = await call(a, admin, "POST", "/datasets", {
      name: "review-processes",
      labels: ["cat"],
      review_rate: 1,
      access: "open",
    });
    assert.equal(ds.status, 201, JSON.stringify(ds.body));
    const datasetId = ds.body.id as string;
    const reg = await call(b, admin, "POST", `/datasets/${datasetId}/images`, {
      images: Array.from({ length: IMAGES }, (_, i) => ({
        uri: `s3://b/review-processes/${i}.jpg`,
        priority: i % 5,
      })),
    });
    assert.equal(reg.status, 200, JSON.stringify(reg.body));
    // Every image annotated once, so every one waits for review.
    const annotator = await userToken(servers, admin, "rp-annotator", "annotator", 0);
    for (let i = 0; i < IMAGES; i++) {
      const c = await call(servers[i % 2], annotator, "POST", `/datasets/${datasetId}/claims`);
      assert.equal(c.status, 201);
      const s = await call(
        servers[(i + 1) % 2],
        annotator,
        "POST",
        `/images/${c.body.image.id}/annotations`,
        {
          claim_id: c.body.claim.id,
          labels: ["cat"],
        },
      );
      assert.equal(s.status, 201);
    }
    const tokens = await Promise.all(
      Array.from(
        { length: REVIEWERS },
        (_, n) => userToken(servers, admin, `rp-${n}`, "reviewer", n),
      ),
    );

    const problems: string[] = [];
    const decided: string[] = [];
    const deadline = Date.now() + 25_000;
    await Promise.all(tokens.map(async (token, n) => {
      for (let round = 0; Date.now() < deadline; round++) {
        const here = servers[(n + round) % 2];
        const there = servers[(n + round + 1) % 2];
        const r = await call(here, token, "POST", `/datasets/${datasetId}/reviews`);
        if (r.status === 204) return;
        if (r.status !== 201) {
          problems.push(`claimNextReview: ${r.status} ${JSON.stringify(r.body)}`);
          return;
        }
        const { review, image } = r.body;
        if (round % 3 === 0) {
          const again = await call(there, token, "POST", `/datasets/${datasetId}/reviews`);
          if (again.status !== 200 || again.body.review.id !== review.id) {
            problems.push(`re-claim: ${again.status} ${JSON.stringify(again.body)}`);
          }
        }
        if (round % 5 === 4) {
          const renewed = await call(there, token, "POST", `/reviews/${review.id}/renew`);
          if (renewed.status !== 200) problems.push(`renew: ${renewed.status}`);
        }
        if (round % 7 === 6) {
          const released = await call(there, token, "DELETE", `/reviews/${review.id}`);
          if (released.status !== 204) problems.push(`release: ${released.status}`);
          continue;
        }
        const s = await call(there, token, "POST", `/images/${image.id}/reviews`, {
          claim_id: review.id,
          decision: round % 4 === 1 ? "fix" : "accept",
          ...(round % 4 === 1 ? { annotation: { labels: ["cat"] } } : {}),
        });
        if (s.status !== 200) problems.push(`submitReview: ${s.status} ${JSON.stringify(s.body)}`);
        else decided.push(image.id);
      }
      problems.push(`reviewer ${n} still busy at the deadline`);
    }));
    const errors = servers.flatMap((s) => s.logs().filter((l) => l.level === "error"));
    assert.deepEqual(
      problems.slice(0, 10),
      [],
      `${problems.length} problems; server errors: ${JSON.stringify(errors.slice(0, 3))}`,
    );
    assert.equal(decided.length, IMAGES);
    assert.equal(new Set(decided).size, IMAGES, "no image decided twice");

    const [counts] = await tdb.db.unsafe(
      `SELECT count(*) FILTER (WHERE review = 'accepted')::int AS accepted,
         count(*)::int AS images
       FROM images WHERE dataset_id = $1::bigint`,
      [datasetId],
    );
    assert.deepEqual(counts, { accepted: IMAGES, images: IMAGES });
    // At the start of every review lease, no other lease on its image was live: a lease is live
    // from its start until it ended or expired, whichever came first.
    const crowded = await tdb.db.unsafe(
      `WITH reviews AS (
         SELECT claim_id AS review_id, image_id, claimed_at, least(ended_at, expires_at) AS until
         FROM ended_reviews WHERE dataset_id = $1::bigint
       )
       SELECT x.review_id::text, y.review_id::text AS other
       FROM reviews x JOIN reviews y ON y.image_id = x.image_id AND y.review_id <> x.review_id
         AND tstzrange(y.claimed_at, y.until) @> x.claimed_at`,
      [datasetId],
    );
    assert.deepEqual([...crowded], [], "an image was held by two review leases at once");
    const [ends] = await tdb.db.unsafe(
      `SELECT count(*) FILTER (WHERE end_reason = 'completed')::int AS completed,
         count(*) FILTER (WHERE end_reason = 'released')::int AS released
       FROM ended_reviews WHERE dataset_id = $1::bigint`,
      [datasetId],
    );
    assert.equal(ends.completed, IMAGES, "one completed review per image");
    assert.ok(ends.released > 0, "releases were exercised");
  } finally {
    for (const s of servers) s.kill("SIGKILL");
    await Promise.all(servers.map((s) => s.exited));
    await tdb.close();
  }
});
