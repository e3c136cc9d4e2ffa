/**
 * Section 6: ingest. registerImages (10,000 images a request) against a client-side COPY of the
 * same rows into the same table; setPriorities (10,000 ids a request, shuffled) against an
 * `UPDATE ... FROM unnest(...)` in the same batches. In interleaved rounds as the cycle runs (the
 * order alternating), so load from elsewhere on the machine hits both sides of each ratio: in
 * one run, COPY once went from 46,682 to 59,719 images/s between two runs minutes apart.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createDataset } from "../../testkit/api.ts";
import { checkpoint, type Ctx, fmt, log, sqlFile } from "../lib/context.ts";
import { copyText } from "../lib/rows.ts";
import { latency, round } from "../lib/stats.ts";
import { runWorkers } from "../lib/workers.ts";
import type { IngestJob, IngestResult } from "../workers/http_ingest.ts";

export async function ingestSection(ctx: Ctx) {
  const { opts, sql, server, adminToken } = ctx;
  const base = server.url;
  const dataset = (name: string) => createDataset(base, adminToken, name);
  const n = opts.ingestImages;
  const batch = 10_000;
  const perRound = Math.ceil(n / batch / Math.max(1, opts.rounds)) * batch;
  const httpId = await dataset("bench-ingest-http");
  const copyId = await dataset("bench-ingest-copy");
  /** Each round's [first image index, count]. */
  const ranges: [number, number][] = [];
  for (let at = 0; at < n; at += perRound) ranges.push([at, Math.min(perRound, n - at)]);
  type Side = { wallS: number; cpuS: number; requestMs: number[]; rounds: number[] };
  const side = (): Side => ({ wallS: 0, cpuS: 0, requestMs: [], rounds: [] });
  /** Runs `http` and `raw` on each range, alternating which goes first. */
  const interleaved = async (
    http: (at: number, count: number) => Promise<{ wallS: number; requestMs: number[] }>,
    raw: (at: number, count: number) => Promise<number>,
  ) => {
    const ours = side();
    const ref = side();
    for (const [r, [at, count]] of ranges.entries()) {
      for (const which of r % 2 ? ["raw", "http"] : ["http", "raw"]) {
        await checkpoint(sql);
        if (which === "http") {
          const cpu0 = server.cpuSeconds();
          const run = await http(at, count);
          ours.cpuS += server.cpuSeconds() - cpu0;
          ours.wallS += run.wallS;
          ours.requestMs.push(...run.requestMs);
          ours.rounds.push(round(count / run.wallS));
        } else {
          const wallS = await raw(at, count);
          ref.wallS += wallS;
          ref.rounds.push(round(count / wallS));
        }
      }
    }
    return { ours, ref };
  };
  const ingestHttp = async (job: IngestJob, count: number) => {
    const run = await runWorkers<IngestJob, IngestResult>(
      new URL("../workers/http_ingest.ts", import.meta.url),
      [job],
    );
    if (run.results[0].items !== count) {
      throw new Error(`${job.kind}: ${run.results[0].items} of ${count} items`);
    }
    return { wallS: run.wallS, requestMs: run.results[0].requestMs };
  };

  const reg = await interleaved(
    (at, count) =>
      ingestHttp({
        kind: "register",
        base,
        token: adminToken,
        datasetId: httpId,
        batch,
        tag: "ing",
        first: at + 1,
        count,
      }, count),
    async (at, count) => {
      const chunks: string[] = [];
      for (let k = at; k < at + count; k += batch) {
        chunks.push(copyText(copyId, "ing", k + 1, Math.min(batch, at + count - k)));
      }
      const t = performance.now();
      const writable = await sql.unsafe(sqlFile("copy_images")).writable();
      await pipeline(Readable.from(chunks), writable);
      return (performance.now() - t) / 1000;
    },
  );
  ctx.noteRss("registerImages");

  const shuffled = async (id: string) => {
    const rows = await sql<{ id: string }[]>`
      SELECT id::text FROM images WHERE dataset_id = ${id} ORDER BY random()`;
    return rows.map((r) => r.id);
  };
  const httpIds = await shuffled(httpId);
  const copyIds = await shuffled(copyId);
  if (httpIds.length !== n) throw new Error(`registerImages wrote ${httpIds.length} rows`);
  if (copyIds.length !== n) throw new Error(`COPY wrote ${copyIds.length} rows`);
  // Both datasets were just written: vacuum them now rather than let autovacuum start on
  // the images table in whichever run comes first (ours, in round 1: 0.50 of the unnest
  // UPDATE in that round against 0.70 and 0.77 in the next two, one run).
  {
    const t = performance.now();
    await sql`VACUUM (ANALYZE) images`;
    log(
      `ingest: VACUUM (ANALYZE) images between the two in ${
        fmt((performance.now() - t) / 1000, 1)
      } s`,
    );
  }

  const unnest = sqlFile("unnest_priorities");
  const prio = await interleaved(
    (at, count) =>
      ingestHttp({
        kind: "priorities",
        base,
        token: adminToken,
        datasetId: httpId,
        batch,
        ids: httpIds.slice(at, at + count),
      }, count),
    async (at, count) => {
      const batches: [string[], number[]][] = [];
      for (let k = at; k < at + count; k += batch) {
        const ids = copyIds.slice(k, Math.min(k + batch, at + count));
        batches.push([ids, ids.map(() => Math.random())]);
      }
      const t = performance.now();
      let updated = 0;
      for (const [ids, priorities] of batches) {
        updated += (await sql.unsafe(unnest, [ids, priorities], { prepare: true })).count;
      }
      if (updated !== count) throw new Error(`the unnest UPDATE set ${updated} of ${count}`);
      return (performance.now() - t) / 1000;
    },
  );
  ctx.noteRss("setPriorities");

  const perS = (items: number, s: number) => round(items / s);
  // Whether a request costs more as the dataset grows: the first and last tenth.
  const ends = (ms: number[]) => {
    const k = Math.max(1, Math.floor(ms.length / 10));
    const mean = (xs: number[]) => round(xs.reduce((a, b) => a + b, 0) / xs.length, 1);
    return {
      first_tenth_mean_ms: mean(ms.slice(0, k)),
      last_tenth_mean_ms: mean(ms.slice(-k)),
    };
  };
  const ingest = {
    images: n,
    batch,
    rounds: ranges.length,
    register: {
      wall_s: round(reg.ours.wallS, 2),
      images_per_s: perS(n, reg.ours.wallS),
      rounds: reg.ours.rounds,
      request: latency(reg.ours.requestMs),
      ...ends(reg.ours.requestMs),
      server_cpu_s: round(reg.ours.cpuS, 2),
    },
    copy: {
      wall_s: round(reg.ref.wallS, 2),
      images_per_s: perS(n, reg.ref.wallS),
      rounds: reg.ref.rounds,
    },
    set_priorities: {
      wall_s: round(prio.ours.wallS, 2),
      rows_per_s: perS(n, prio.ours.wallS),
      rounds: prio.ours.rounds,
      request: latency(prio.ours.requestMs),
      ...ends(prio.ours.requestMs),
      server_cpu_s: round(prio.ours.cpuS, 2),
    },
    unnest_update: {
      wall_s: round(prio.ref.wallS, 2),
      rows_per_s: perS(n, prio.ref.wallS),
      rounds: prio.ref.rounds,
    },
  };
  log(
    `\ningest: registerImages ${fmt(ingest.register.images_per_s)}/s, COPY ` +
      `${fmt(ingest.copy.images_per_s)}/s; setPriorities ${fmt(ingest.set_priorities.rows_per_s)}` +
      `/s, unnest UPDATE ${fmt(ingest.unnest_update.rows_per_s)}/s`,
  );
  const pairs = (a: number[], b: number[]) => a.map((x, i) => `${fmt(x)}/${fmt(b[i])}`).join(", ");
  log(
    `  by round: registerImages/COPY ${pairs(ingest.register.rounds, ingest.copy.rounds)}; ` +
      `setPriorities/UPDATE ${pairs(ingest.set_priorities.rounds, ingest.unnest_update.rounds)}`,
  );
  return ingest;
}
