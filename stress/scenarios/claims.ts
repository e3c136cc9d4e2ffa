/**
 * No double claims, ever: 64 annotators on 2 server processes sharing one database claim, submit,
 * release, renew (some exactly at the lease's expiry), and abandon claims to let them expire, on a
 * k=1 dataset and a k=3 (overlap) dataset whose leases last 2 s. Checked three ways:
 *
 * - every answer, as it arrives: only the statuses the contract allows; a claim never hands a user
 *   an image they already annotated;
 * - a sampler, every 250 ms, in one database snapshot: per image, annotators plus live leases never
 *   exceed k, nobody holds an image they annotated or holds it twice;
 * - afterwards, every claim's holding intervals (from the claims table and the acknowledged
 *   renewals) swept per image: never more than k holders-or-annotators at any moment.
 */
import { adminToken, call, createUsers, type Res, type User } from "../../testkit/api.ts";
import { sleep } from "../../testkit/time.ts";
import {
  auditWrites,
  type Ctx,
  fmt,
  type Result,
  type Scenario,
  seedDataset,
  snapshotInvariants,
  sqlFor,
} from "../lib/scenario.ts";
import { killHard, startLoadServer } from "../../testkit/process.ts";
import { dedupe } from "./db_restart.ts";

/**
 * What the run seeds, and the claims it must reach. A completed claim uses one of a dataset's
 * slots for good (k per image); released and expired ones give theirs back. About 80 % of claims
 * complete here, so the slots must be well over the target, or the datasets run dry first: with
 * 8,000 + 3 × 3,000 slots the full run ended near 21,000 claims, barely over 20,000.
 */
export const LOAD = {
  full: { target: 20_000, annotators: 64, single: 14_000, overlap: 4_000 },
  quick: { target: 2_000, annotators: 16, single: 1_500, overlap: 600 },
};
/** Annotations per image of the overlap dataset. */
export const OVERLAP_K = 3;

/** The slots (annotations the datasets can take) a load seeds. */
export function claimSlots(load: typeof LOAD.full): number {
  return load.single + OVERLAP_K * load.overlap;
}

/**
 * When to stop asking a dataset: after more than `limit` claims in a row answered 204 in that
 * dataset. Counted per dataset (one dataset running dry says nothing about the other) and reset
 * by each claim it grants, so 204s that are transient (every candidate row briefly locked by
 * other claimers under SKIP LOCKED) cannot add up over a long run and end a dataset early.
 */
export class DrainTracker {
  readonly #empties = new Map<string, number>();
  readonly drained = new Set<string>();
  /** Every 204, all datasets, for the notes. */
  total = 0;
  constructor(readonly limit: number) {}
  empty(datasetId: string): void {
    this.total++;
    const n = (this.#empties.get(datasetId) ?? 0) + 1;
    this.#empties.set(datasetId, n);
    if (n > this.limit) this.drained.add(datasetId);
  }
  claimed(datasetId: string): void {
    this.#empties.set(datasetId, 0);
  }
  open(datasetIds: string[]): string[] {
    return datasetIds.filter((d) => !this.drained.has(d));
  }
}

/** A violation when the run granted fewer claims than it promises to test, else null. */
export function shortfall(target: number, claims: number, drained: number): string | null {
  if (claims >= target) return null;
  return `only ${fmt(claims)} claims were granted, below the target of ${fmt(target)} ` +
    `(${drained} dataset(s) ran dry first): the run did not test what it claims to`;
}

/** Leases this short are below the API's minimum (30 s): set in the database for this run. */
const TTL_SECONDS = 2;
/** Holding intervals use statement start times; a claim's statement may run this long. */
const TOLERANCE_MS = 250;

interface Stats {
  claims: number;
  held: number;
  submits: number;
  lateAccepted: number;
  lateRefused: number;
  releases: number;
  renewals: number;
  edgeRenewAccepted: number;
  edgeRenewRefused: number;
  samples: number;
  lockedClaims: number;
}

export const claimsScenario: Scenario = {
  name: "claims",
  async run(ctx: Ctx): Promise<Result> {
    const load = ctx.quick ? LOAD.quick : LOAD.full;
    const { target, annotators } = load;
    const url = await ctx.database("claims");
    const servers = await Promise.all([0, 1].map(() => startLoadServer({ databaseUrl: url })));
    const bases = servers.map((s) => s.url);
    const sql = sqlFor(url, 3);
    const violations: string[] = [];
    const stats: Stats = {
      claims: 0,
      held: 0,
      submits: 0,
      lateAccepted: 0,
      lateRefused: 0,
      releases: 0,
      renewals: 0,
      edgeRenewAccepted: 0,
      edgeRenewRefused: 0,
      samples: 0,
      lockedClaims: 0,
    };
    /** Acknowledged renewals: claim id → new expiries (server time, ms). */
    const renewals = new Map<string, number[]>();
    try {
      const admin = await adminToken(bases[0]);
      const single = await seedDataset(bases[0], admin, {
        name: "claims-k1",
        count: load.single,
      });
      const overlap = await seedDataset(bases[0], admin, {
        name: "claims-k3",
        k: OVERLAP_K,
        count: load.overlap,
      });
      await sql.unsafe(
        `ALTER TABLE datasets DROP CONSTRAINT IF EXISTS datasets_claim_ttl_seconds_check`,
      );
      await sql.unsafe(`UPDATE datasets SET claim_ttl_seconds = ${TTL_SECONDS}`);
      const users = await createUsers(
        (i) => bases[i % 2],
        admin,
        "claims-a",
        "annotator",
        annotators,
      );

      const stop = { now: false };
      const datasets = [single.id, overlap.id];
      const drain = new DrainTracker(annotators * 4);
      const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)];
      const expect = (what: string, res: Res, ok: number[]) => {
        if (!ok.includes(res.status)) {
          violations.push(
            `${what}: ${res.status} ${JSON.stringify(res.body ?? res.error).slice(0, 200)}`,
          );
        }
      };

      const annotate = async (u: User) => {
        const annotated = new Set<string>();
        while (!stop.now) {
          const open = drain.open(datasets);
          if (!open.length) return;
          const datasetId = pick(open);
          const c = await call(
            pick(bases),
            u.token,
            "POST",
            `/api/v1/datasets/${datasetId}/claims`,
          );
          expect("claimNextImage", c, [200, 201, 204]);
          if (c.status === 204) {
            drain.empty(datasetId);
            continue;
          }
          if (c.status !== 200 && c.status !== 201) continue;
          drain.claimed(datasetId);
          if (c.status === 201) stats.claims++;
          else stats.held++;
          const claim = c.body.claim;
          if (claim.user_id !== u.id || claim.dataset_id !== datasetId) {
            violations.push(`claim ${claim.id} is not the caller's or not in ${datasetId}`);
          }
          if (annotated.has(claim.image_id)) {
            violations.push(
              `user ${u.id} was handed image ${claim.image_id} again after annotating it`,
            );
          }
          if (stats.claims >= target) stop.now = true;
          const submit = async (late: boolean) => {
            const s = await call(
              pick(bases),
              u.token,
              "POST",
              `/api/v1/images/${claim.image_id}/annotations`,
              {
                claim_id: claim.id,
                labels: ["cat"],
              },
            );
            if (s.status === 201) {
              stats.submits++;
              annotated.add(claim.image_id);
              if (late) stats.lateAccepted++;
            } else if (s.status === 409 && s.body?.error?.code === "claim_expired") {
              stats.lateRefused++;
            } else {
              expect("createAnnotation", s, [201]);
            }
          };
          const renew = async () => {
            const r = await call(pick(bases), u.token, "POST", `/api/v1/claims/${claim.id}/renew`);
            if (r.status === 200) {
              stats.renewals++;
              const list = renewals.get(claim.id) ?? [];
              list.push(Date.parse(r.body.expires_at));
              renewals.set(claim.id, list);
            } else if (!(r.status === 409 && r.body?.error?.code === "claim_expired")) {
              expect("renewClaim", r, [200]);
            }
            return r.status === 200;
          };
          const roll = Math.random();
          if (roll < 0.6) {
            await submit(false);
          } else if (roll < 0.75) {
            const r = await call(pick(bases), u.token, "DELETE", `/api/v1/claims/${claim.id}`);
            expect("releaseClaim", r, [204]);
            if (r.status === 204) stats.releases++;
          } else if (roll < 0.88) {
            if (await renew()) await submit(false);
          } else if (roll < 0.95) {
            // Renew at the edge: just before, at, or just after the lease runs out.
            const wait = Date.parse(claim.expires_at) - Date.now() - 15 + Math.random() * 30;
            if (wait > 0) await sleep(wait);
            if (await renew()) {
              stats.edgeRenewAccepted++;
              await submit(false);
            } else {
              stats.edgeRenewRefused++;
            }
          } else {
            // Abandon: let the lease run out, then try to submit anyway.
            await sleep(TTL_SECONDS * 1000 + 50 + Math.random() * 400);
            await submit(true);
          }
        }
      };

      const sampler = (async () => {
        while (!stop.now) {
          const found = await snapshotInvariants(sql);
          stats.samples++;
          for (const f of found) violations.push(`sampled: ${f}`);
          await sleep(250);
        }
      })();
      // Fault: lock contention at the worst moment. Claims about to expire get their row locked
      // for 200 ms by another connection, so a renew or submit that starts just before the
      // expiry is held up until after it, while other annotators may take the image.
      const locks = sqlFor(url, 2);
      const injector = (async () => {
        while (!stop.now) {
          const held = await locks.begin(async (tx) => {
            const rows = await tx.unsafe(
              `SELECT id FROM claims
               WHERE active AND expires_at BETWEEN now() AND now() + interval '100 milliseconds'
               LIMIT 8 FOR UPDATE SKIP LOCKED`,
            );
            if (rows.length) await tx.unsafe(`SELECT pg_sleep(0.2)`);
            return rows.length;
          }).catch(() => 0);
          stats.lockedClaims += held;
          await sleep(20);
        }
      })();
      const progress = setInterval(
        () => ctx.log(`  ${fmt(stats.claims)} claims, ${fmt(stats.submits)} annotations`),
        10_000,
      );
      const started = performance.now();
      await Promise.all(users.map(annotate));
      stop.now = true;
      clearInterval(progress);
      await sampler;
      await injector;
      await locks.end();
      const seconds = (performance.now() - started) / 1000;

      const short = shortfall(target, stats.claims, drain.drained.size);
      if (short) violations.push(short);
      violations.push(...await auditWrites(sql));
      violations.push(...await snapshotInvariants(sql));
      const sweep = await auditIntervals(sql, renewals);
      violations.push(...sweep.violations);
      for (const s of servers) {
        for (const e of s.logs("error").slice(0, 5)) {
          violations.push(`server logged: ${JSON.stringify(e).slice(0, 300)}`);
        }
      }
      const [db] = await sql.unsafe(`
        SELECT count(*)::int AS claims,
          count(*) FILTER (WHERE end_reason = 'expired' OR (active AND expires_at <= now()))::int
            AS expired,
          count(*) FILTER (WHERE end_reason = 'released')::int AS released,
          count(*) FILTER (WHERE end_reason = 'completed')::int AS completed
        FROM claims`);
      return {
        test: "1. no double claims",
        load:
          `${annotators} annotators, 2 servers, ${fmt(db.claims)} claims in ${
            seconds.toFixed(0)
          } s ` +
          `(k=1 and k=3 datasets)`,
        faults: `${TTL_SECONDS} s leases: ${fmt(db.expired)} expired, ${
          fmt(stats.edgeRenewAccepted + stats.edgeRenewRefused)
        } renewals at the expiry edge; ${
          fmt(stats.lockedClaims)
        } claims row-locked 200 ms at expiry`,
        violations: dedupe(violations),
        notes: [
          `claims ${fmt(db.claims)}: ${fmt(db.completed)} completed, ${
            fmt(db.released)
          } released, ` +
          `${fmt(db.expired)} expired; ${fmt(stats.held)} answered "held" (200); ` +
          `${fmt(drain.total)} answered 204; ${fmt(claimSlots(load))} slots seeded for a ` +
          `target of ${fmt(target)}`,
          `renewals ${fmt(stats.renewals)} (at the edge: ${stats.edgeRenewAccepted} accepted, ` +
          `${stats.edgeRenewRefused} refused); late submits ${stats.lateAccepted} accepted, ` +
          `${stats.lateRefused} refused (claim_expired)`,
          `${fmt(stats.samples)} snapshot samples; interval sweep over ${
            fmt(sweep.images)
          } images, ` +
          `largest overlap within the ${TOLERANCE_MS} ms statement-time tolerance: ${
            sweep.maxOverlapMs.toFixed(0)
          } ms`,
        ],
      };
    } finally {
      await sql.end();
      await Promise.all(servers.map(killHard));
    }
  },
};

/**
 * Per image, the holders over time: each claim holds its slot from created_at until it ends
 * (released or completed: ended_at) or its lease runs out, extended by each acknowledged renewal
 * (made at new expiry − TTL; a renewal after the lease ran out starts a new interval); a completed
 * claim's annotation holds a slot from then on. More than k at once, for longer than the
 * tolerance, is a double claim.
 */
async function auditIntervals(
  sql: ReturnType<typeof sqlFor>,
  renewals: Map<string, number[]>,
): Promise<{ violations: string[]; images: number; maxOverlapMs: number }> {
  const rows = await sql.unsafe(`
    SELECT c.id::text, c.image_id::text, c.user_id::text, d.annotations_per_image AS k,
      d.claim_ttl_seconds AS ttl,
      extract(epoch FROM c.created_at) * 1000 AS created,
      extract(epoch FROM c.ended_at) * 1000 AS ended, c.end_reason
    FROM claims c JOIN datasets d ON d.id = c.dataset_id
    ORDER BY c.image_id, c.id`);
  // deno-lint-ignore no-explicit-any
  const byImage = new Map<string, any[]>();
  for (const r of rows) {
    const list = byImage.get(r.image_id) ?? [];
    list.push(r);
    byImage.set(r.image_id, list);
  }
  const violations: string[] = [];
  let maxOverlapMs = 0;
  for (const [imageId, claims] of byImage) {
    const k = Number(claims[0].k);
    const events: [number, number, string][] = [];
    for (const c of claims) {
      const ttl = Number(c.ttl) * 1000;
      const created = Number(c.created);
      const ended = c.ended === null ? Infinity : Number(c.ended);
      const segments: [number, number][] = [];
      let start = created;
      let end = created + ttl;
      for (const exp of (renewals.get(c.id) ?? []).sort((a, b) => a - b)) {
        const at = exp - ttl;
        if (at > end) {
          segments.push([start, end]);
          start = at;
        }
        end = Math.max(end, exp);
      }
      segments.push([start, end]);
      const until = c.end_reason === "completed" || c.end_reason === "released" ? ended : Infinity;
      for (const [s, e] of segments) {
        const stop = Math.min(e, until);
        if (s < stop) events.push([s, 1, c.id], [stop, -1, c.id]);
      }
      if (c.end_reason === "completed") events.push([ended, 1, `annotation of ${c.id}`]);
    }
    // Ends before starts at the same instant: intervals are half-open.
    events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let count = 0;
    let overSince: number | null = null;
    const holders = new Set<string>();
    for (const [at, delta, who] of events) {
      if (delta > 0) holders.add(who);
      else holders.delete(who);
      count += delta;
      if (count > k && overSince === null) overSince = at;
      if (count <= k && overSince !== null) {
        const ms = at - overSince;
        if (ms > TOLERANCE_MS) {
          violations.push(
            `image ${imageId} (k=${k}) had more than k holders for ${Math.round(ms)} ms from ` +
              `${new Date(overSince).toISOString()}`,
          );
        } else maxOverlapMs = Math.max(maxOverlapMs, ms);
        overSince = null;
      }
    }
    if (overSince !== null) {
      violations.push(`image ${imageId} (k=${k}) ends with more than k holders: ${[...holders]}`);
    }
  }
  return { violations, images: byImage.size, maxOverlapMs };
}
