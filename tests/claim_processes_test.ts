/**
 * Two real server processes on one database (testkit/process.ts), 16 annotators draining a
 * small dataset with annotations_per_image = 2 through both: each request goes to either
 * server, re-claims and releases included. Afterwards every image has exactly two human
 * annotations by two different annotators, and the claims table shows no image ever held by
 * more than two claims at once, nor by one annotator twice at once.
 */
import assert from "node:assert/strict";
import { createTestDb } from "./harness.ts";
import * as api from "../testkit/api.ts";
import { dbEnv, productionEnv, type ServerProcess, startServer } from "../testkit/process.ts";

const ANNOTATORS = 16;
const IMAGES = 60;
const K = 2;

/** testkit's `call` on one of the servers' API (a lost connection comes back as status 0). */
const call = (
  server: ServerProcess,
  token: string | null,
  method: string,
  path: string,
  body?: unknown,
) => api.call(`${server.url}/api/v1`, token, method, path, body);

Deno.test("two server processes, 16 annotators, k=2: each image twice, never crowded", async () => {
  const tdb = await createTestDb(4);
  const servers: ServerProcess[] = [];
  try {
    // LOG_LEVEL stays info: startServer waits for the "listening" line.
    const env = { ...productionEnv(), ...dbEnv(tdb.url), DB_POOL_MAX: "8" };
    servers.push(...await Promise.all([startServer(env), startServer(env)]));
    const [a, b] = servers;
    const admin = await api.adminToken(a);

    const ds = await call(a, admin, "POST", "/datasets", {
      name: "two-processes",
      access: "open",
      labels: ["cat"],
      annotations_per_image: K,
    });
    assert.equal(ds.status, 201, JSON.stringify(ds.body));
    const datasetId = ds.body.id as string;
    const reg = await call(b, admin, "POST", `/datasets/${datasetId}/images`, {
      images: Array.from({ length: IMAGES }, (_, i) => ({
        uri: `s3://b/processes/${i}.jpg`,
        priority: i % 7,
      })),
    });
    assert.equal(reg.status, 200, JSON.stringify(reg.body));

    const tokens = await Promise.all(Array.from({ length: ANNOTATORS }, async (_, n) => {
      const created = await call(servers[n % 2], admin, "POST", "/users", {
        name: `process-annotator-${n}`,
        role: "annotator",
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      const token = await call(servers[(n + 1) % 2], null, "POST", "/auth/token", {
        api_key: created.body.api_key,
      });
      assert.equal(token.status, 200);
      return token.body.access_token as string;
    }));

    const problems: string[] = [];
    const done = async () =>
      (await call(a, admin, "GET", `/datasets/${datasetId}/stats`)).body.done === IMAGES;
    const deadline = Date.now() + 25_000;
    await Promise.all(tokens.map(async (token, n) => {
      for (let round = 0; Date.now() < deadline; round++) {
        // Alternate the servers: claim on one, follow up on the other.
        const here = servers[(n + round) % 2];
        const there = servers[(n + round + 1) % 2];
        const c = await call(here, token, "POST", `/datasets/${datasetId}/claims`);
        if (c.status === 204) {
          // The remaining slots are under other annotators' leases (or all done).
          if (await done()) return;
          await new Promise((r) => setTimeout(r, 25));
          continue;
        }
        if (c.status !== 201) {
          problems.push(`claim: ${c.status} ${JSON.stringify(c.body)}`);
          return;
        }
        const claim = c.body.claim;
        if (round % 3 === 0) {
          const again = await call(there, token, "POST", `/datasets/${datasetId}/claims`);
          if (again.status !== 200 || again.body.claim.id !== claim.id) {
            problems.push(`re-claim: ${again.status} ${JSON.stringify(again.body)}`);
          }
        }
        if (round % 5 === 4) {
          const renewed = await call(there, token, "POST", `/claims/${claim.id}/renew`);
          if (renewed.status !== 200) problems.push(`renew: ${renewed.status}`);
        }
        if (round % 7 === 6) {
          const released = await call(there, token, "DELETE", `/claims/${claim.id}`);
          if (released.status !== 204) problems.push(`release: ${released.status}`);
          continue;
        }
        const s = await call(there, token, "POST", `/images/${claim.image_id}/annotations`, {
          claim_id: claim.id,
          labels: ["cat"],
        });
        if (s.status !== 201) problems.push(`submit: ${s.status} ${JSON.stringify(s.body)}`);
      }
      problems.push(`annotator ${n} still busy at the deadline`);
    }));
    const errors = servers.flatMap((s) => s.logs().filter((l) => l.level === "error"));
    assert.deepEqual(
      problems.slice(0, 10),
      [],
      `${problems.length} problems; server errors: ${JSON.stringify(errors.slice(0, 3))}`,
    );

    // From the database both servers wrote to.
    const perImage = await tdb.db.unsafe(
      `SELECT i.id::text, count(a.id)::int AS n, count(DISTINCT a.author_id)::int AS authors
       FROM images i
       LEFT JOIN annotations a ON a.image_id = i.id AND a.source = 'human'
       WHERE i.dataset_id = $1::bigint
       GROUP BY i.id`,
      [datasetId],
    );
    assert.equal(perImage.length, IMAGES);
    for (const row of perImage) {
      assert.deepEqual({ n: row.n, authors: row.authors }, { n: K, authors: K }, `image ${row.id}`);
    }
    // At the start of every claim, at most K claims on its image were live, none of them
    // another by the same annotator. A claim is live from its creation until it ended or
    // expired, whichever came first.
    const crowded = await tdb.db.unsafe(
      `SELECT b.id::text, count(*)::int AS live,
         count(*) FILTER (WHERE a.user_id = b.user_id)::int AS same_user
       FROM claims b
       JOIN claims a ON a.image_id = b.image_id
         AND tstzrange(a.created_at, least(a.ended_at, a.expires_at)) @> b.created_at
       WHERE b.dataset_id = $1::bigint
       GROUP BY b.id
       HAVING count(*) > $2::integer OR count(*) FILTER (WHERE a.user_id = b.user_id) > 1`,
      [datasetId, K],
    );
    assert.deepEqual([...crowded], [], "an image was held by too many claims at once");
    const [ends] = await tdb.db.unsafe(
      `SELECT count(*) FILTER (WHERE end_reason = 'completed')::int AS completed,
         count(*) FILTER (WHERE end_reason = 'released')::int AS released,
         count(*) FILTER (WHERE active)::int AS active
       FROM claims WHERE dataset_id = $1::bigint`,
      [datasetId],
    );
    assert.equal(ends.completed, IMAGES * K, "one completed claim per annotation");
    assert.ok(ends.released > 0, "releases were exercised");
    assert.equal(ends.active, 0);
  } finally {
    for (const s of servers) s.kill("SIGKILL");
    await Promise.all(servers.map((s) => s.exited));
    await tdb.close();
  }
});
