/** What every scenario gets and gives back, and the helpers several of them share. */
import postgres from "postgres";
import type { Cluster } from "../../testkit/postgres.ts";
import { call, expectStatus } from "../../testkit/api.ts";

export interface Ctx {
  cluster: Cluster;
  /** A fresh migrated database on the cluster, for one scenario. */
  database(prefix: string): Promise<string>;
  /** Smaller numbers (a smoke run of the stress suite itself). */
  quick: boolean;
  log(message: string): void;
}

export interface Result {
  test: string;
  /** What was thrown at the service: "64 annotators, 2 servers, 21,034 claims". */
  load: string;
  /** "none", or what went wrong on purpose: "5 × kill -9 of the server". */
  faults: string;
  /** Each a sentence with enough detail to reproduce; the table shows the count. */
  violations: string[];
  /** Measurements worth printing below the table. */
  notes: string[];
  seconds?: number;
}

export interface Scenario {
  name: string;
  run(ctx: Ctx): Promise<Result>;
}

/** A short-lived admin connection to a database (audits, fault set-up). */
export function sqlFor(url: string, max = 2) {
  return postgres(url, { max, onnotice: () => {}, connect_timeout: 5 });
}

export interface SeededDataset {
  id: string;
  images: string[];
}

/** A dataset with `count` images (registered in batches of 5,000). */
export async function seedDataset(
  base: string,
  admin: string,
  opts: { name: string; labels?: string[]; k?: number; count: number; sized?: boolean },
): Promise<SeededDataset> {
  const ds = expectStatus(
    await call(base, admin, "POST", "/api/v1/datasets", {
      name: opts.name,
      labels: opts.labels ?? ["cat", "dog"],
      annotations_per_image: opts.k ?? 1,
      // Every annotator the scenario makes may work in it (membership: the attacks scenario).
      access: "open",
    }),
    201,
  );
  const images: string[] = [];
  for (let i = 0; i < opts.count; i += 5000) {
    const n = Math.min(5000, opts.count - i);
    const reg = expectStatus(
      await call(base, admin, "POST", `/api/v1/datasets/${ds.body.id}/images`, {
        images: Array.from({ length: n }, (_, j) => ({
          uri: `s3://stress/${opts.name}/${i + j}.jpg`,
          external_id: `${opts.name}-${i + j}`,
          priority: (i + j) % 7,
          ...(opts.sized ? { width: 640, height: 480 } : {}),
        })),
      }),
      200,
    );
    images.push(...reg.body.images.map((r: { id: string }) => r.id));
  }
  return { id: ds.body.id, images };
}

export const fmt = (n: number) => n.toLocaleString("en-US");

/**
 * The claim-loop invariants that must hold at every instant, in one snapshot: per image, human
 * annotators plus live leases never exceed k, nobody holds a lease on an image they annotated or
 * two leases on one image, and `done` matches the annotator count. Returns one line per breach.
 */
export async function snapshotInvariants(sql: postgres.Sql): Promise<string[]> {
  const rows = await sql.unsafe(`
    WITH live AS (
      SELECT i.id, i.dataset_id, i.done, i.annotators, d.annotations_per_image AS k,
        ARRAY(SELECT (l).user_id FROM unnest(i.leases) l WHERE (l).expires_at > now()) AS holders
      FROM images i JOIN datasets d ON d.id = i.dataset_id
    )
    SELECT id::text, k, done, annotators::text, holders::text,
      cardinality(annotators) + cardinality(holders) > k AS over,
      annotators && holders AS annotated_and_held,
      cardinality(holders) <> (SELECT count(DISTINCT h) FROM unnest(holders) h) AS held_twice,
      cardinality(annotators) <> (SELECT count(DISTINCT a) FROM unnest(annotators) a) AS dup,
      done <> (cardinality(annotators) >= k) AS done_wrong
    FROM live
    WHERE cardinality(annotators) + cardinality(holders) > k
      OR annotators && holders
      OR cardinality(holders) <> (SELECT count(DISTINCT h) FROM unnest(holders) h)
      OR cardinality(annotators) <> (SELECT count(DISTINCT a) FROM unnest(annotators) a)
      OR done <> (cardinality(annotators) >= k)
    LIMIT 20`);
  return rows.map((r) =>
    `image ${r.id} (k=${r.k}, done=${r.done}): annotators ${r.annotators}, live leases of ` +
    `${r.holders}${r.over ? " — over k" : ""}${
      r.annotated_and_held ? " — held by an annotator" : ""
    }` +
    `${r.held_twice ? " — one user holds two leases" : ""}${
      r.dup ? " — duplicate annotator" : ""
    }` +
    `${r.done_wrong ? " — done is wrong" : ""}`
  );
}

/**
 * Consistency of everything written, after the fact: each human annotation made with a claim
 * completed exactly that claim; every completed claim has exactly one annotation; images'
 * annotators are exactly their human annotations' authors; nobody annotated an image twice or
 * was handed an image again after annotating it.
 */
export async function auditWrites(sql: postgres.Sql): Promise<string[]> {
  const checks: [string, string][] = [
    [
      "a human annotation whose claim is not completed (or is someone else's, or another image's)",
      `SELECT a.id::text AS id FROM annotations a JOIN claims c ON c.id = a.claim_id
       WHERE c.end_reason IS DISTINCT FROM 'completed' OR c.user_id <> a.author_id
         OR c.image_id <> a.image_id`,
    ],
    [
      "a completed claim without exactly one annotation",
      `SELECT c.id::text AS id FROM claims c
       WHERE c.end_reason = 'completed'
         AND (SELECT count(*) FROM annotations a WHERE a.claim_id = c.id) <> 1`,
    ],
    [
      "an image whose annotators are not its human annotations' authors",
      `SELECT i.id::text AS id FROM images i
       WHERE ARRAY(SELECT unnest(i.annotators) ORDER BY 1) <>
         ARRAY(SELECT DISTINCT a.author_id FROM annotations a
               WHERE a.image_id = i.id AND a.source = 'human' ORDER BY 1)`,
    ],
    [
      "a user with two human annotations of one image",
      `SELECT image_id::text || '/' || author_id::text AS id FROM annotations
       WHERE source = 'human' GROUP BY image_id, author_id HAVING count(*) > 1`,
    ],
    [
      "a claim handed out on an image its user had already annotated",
      `SELECT c.id::text AS id FROM claims c JOIN annotations a
         ON a.image_id = c.image_id AND a.author_id = c.user_id AND a.source = 'human'
       WHERE c.created_at > a.created_at`,
    ],
    [
      "a user with two active claims in one dataset",
      `SELECT dataset_id::text || '/' || user_id::text AS id FROM claims WHERE active
       GROUP BY dataset_id, user_id HAVING count(*) > 1`,
    ],
    [
      "a lease on an image for a claim that has ended",
      `SELECT i.id::text || '/' || (l).claim_id::text AS id
       FROM images i, unnest(i.leases) l JOIN claims c ON c.id = (l).claim_id
       WHERE NOT c.active AND (c.end_reason <> 'expired' OR (l).expires_at > now())`,
    ],
  ];
  const out: string[] = [];
  for (const [what, query] of checks) {
    const rows = await sql.unsafe(`${query} LIMIT 5`);
    for (const r of rows) out.push(`${what}: ${r.id}`);
  }
  return out;
}
