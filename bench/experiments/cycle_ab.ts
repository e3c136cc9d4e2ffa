/**
 * `deno run -A bench/experiments/cycle_ab.ts [--images N] [--cycles N] [--rounds N]
 *   [--concurrency N] [--a K=V]... [--b K=V]... [--a-flag F]... [--b-flag F]...
 *   [--a-servers N] [--b-servers N] [--a-root DIR] [--b-root DIR] [--setup embedded|tuned]
 *   [--client lean|fetch|fused]`:
 * the HTTP annotator cycle of two server configurations, paired.
 *
 * Starts two servers on one database (production settings, each its own process, with its own
 * extra environment `--a`/`--b` and `deno run` flags `--a-flag`/`--b-flag`), one dataset of
 * `--images` each, and runs `--rounds` rounds of `--cycles` cycles on each at `--concurrency`
 * annotators (claim -> submit one bbox, the bench's load generator), in the order A B B A A B ...
 * `--b-servers 2` runs side B on two server processes (the load generator's two Workers each
 * on one of them, same dataset): whether more processes beat one. `--a-root DIR` runs side A
 * from another checkout (a worktree of another commit, with `deno install` run in it): two
 * versions of the code on one database, migrated by this checkout.
 * Load from elsewhere on the machine then hits both alike: the per-round ratios B/A, and their
 * median, say more than two bench runs do. Prints cycles/s, CPU ms per cycle and the WAL written per
 * cycle (bytes and full-page images, from pg_stat_wal) of each round.
 * `--setup tuned`: on Debian's PostgreSQL 15 with production-like settings (bench/lib/database.ts).
 * `--client`: the load generator: the lean HTTP/1.1 client (default), plain `fetch` claim ->
 * submit, or `fetch` with the fused cycle (submit with `"next": true`); bench/workers/.
 */
import postgres from "postgres";
import { migrate } from "../../lib/db/migrate.ts";
import type { Db } from "../../lib/db/query.ts";
import { openBenchDatabase } from "../lib/database.ts";
import { walNow } from "../lib/context.ts";
import { adminToken, createAnnotators } from "../../testkit/api.ts";
import { type ServerProcess, startLoadServer } from "../../testkit/process.ts";
import { budget, runWorkers, split } from "../lib/workers.ts";
import { percentile } from "../lib/stats.ts";
import type { CycleJob, CycleResult } from "../workers/http_cycle.ts";
import type { FetchCycleJob } from "../workers/fetch_cycle.ts";
import { all, flag, option } from "../lib/args.ts";
import { seedImages } from "../sections/setup.ts";

const envOf = (name: string) => Object.fromEntries(all(name).map((kv) => kv.split(/=(.*)/s)));
const images = flag("--images", 100_000);
const cycles = flag("--cycles", 3_000);
const rounds = flag("--rounds", 6);
const concurrency = flag("--concurrency", 32);
const loadClient = all("--client")[0] ?? "lean";
if (!["lean", "fetch", "fused"].includes(loadClient)) throw new Error(`--client ${loadClient}?`);
const configs = [
  {
    name: "A",
    env: envOf("--a"),
    flags: all("--a-flag"),
    servers: flag("--a-servers", 1),
    root: all("--a-root")[0],
  },
  {
    name: "B",
    env: envOf("--b"),
    flags: all("--b-flag"),
    servers: flag("--b-servers", 1),
    root: all("--b-root")[0],
  },
];

/**
 * The server's own latency sums (ms) and counts for the claim and the submit, from /metrics:
 * from the first middleware to the handler's answer, so the rest of a client's wait is the
 * HTTP server's queue, the network and the client.
 */
async function serverMs(base: string) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const of = (route: string, what: "sum" | "count") => {
    let total = 0;
    for (const line of text.split("\n")) {
      if (
        line.startsWith(`http_request_duration_seconds_${what}{`) &&
        line.includes(`route="${route}"`) && line.includes('method="POST"')
      ) total += Number(line.slice(line.lastIndexOf(" ") + 1));
    }
    return what === "sum" ? 1000 * total : total;
  };
  const claim = "/api/v1/datasets/:datasetId/claims";
  const submit = "/api/v1/images/:imageId/annotations";
  return {
    claim: { sum: of(claim, "sum"), count: of(claim, "count") },
    submit: { sum: of(submit, "sum"), count: of(submit, "count") },
  };
}

async function serversMs(bases: string[]) {
  const all = await Promise.all(bases.map(serverMs));
  const add = (k: "claim" | "submit") => ({
    sum: all.reduce((t, m) => t + m[k].sum, 0),
    count: all.reduce((t, m) => t + m[k].count, 0),
  });
  return { claim: add("claim"), submit: add("submit") };
}

const setup = option("--setup") === "tuned" ? "tuned" : "embedded";
const db = await openBenchDatabase(setup, Deno.env.get("DATABASE_URL"));
const sql = postgres(db.url, { max: 2, onnotice: () => {} });
try {
  await migrate(sql as unknown as Db, db.url);
  const sides: (typeof configs[number] & {
    server: ServerProcess;
    extra: ServerProcess[];
    datasetId: string;
    tokens: string[];
    rates: number[];
    cpuMs: number;
    n: number;
  })[] = [];
  for (const c of configs) {
    const server = await startLoadServer({
      databaseUrl: db.url,
      env: c.env,
      flags: c.flags,
      root: c.root,
    });
    const admin = await adminToken(server.url);
    // Made in SQL, `open`, so that a side running older code (--a-root) that predates the
    // dataset's `access` reads it as any dataset.
    const [{ id: datasetId }] = await sql<{ id: string }[]>`
      INSERT INTO datasets (name, labels, access)
      VALUES (${`cycle-ab-${c.name}`}, ${["car", "person"]}::text[], 'open')
      RETURNING id::text`;
    await seedImages(sql, "images", datasetId, images);
    const tokens = await createAnnotators(server.url, admin, concurrency, `cycle-ab-${c.name}`);
    const extra = [];
    for (let i = 1; i < c.servers; i++) {
      extra.push(
        await startLoadServer({ databaseUrl: db.url, env: c.env, flags: c.flags, root: c.root }),
      );
    }
    sides.push({
      ...c,
      server,
      extra,
      datasetId,
      tokens,
      rates: [] as number[],
      cpuMs: 0,
      n: 0,
    });
  }
  await sql`VACUUM (ANALYZE)`;
  const run = async (side: typeof sides[number], n: number) => {
    const all = [side.server, ...side.extra];
    const cpuOf = () => all.reduce((t, s) => t + s.cpuSeconds(), 0);
    const cpu0 = cpuOf();
    const shared = budget(n);
    const jobs = split(side.tokens, 2).map((tokens, i) => ({
      base: all[i % all.length].url,
      datasetId: side.datasetId,
      tokens,
      budget: shared,
    }));
    const { wallS, results } = loadClient === "lean"
      ? await runWorkers<CycleJob, CycleResult>(
        new URL("../workers/http_cycle.ts", import.meta.url),
        jobs,
      )
      : await runWorkers<FetchCycleJob, CycleResult>(
        new URL("../workers/fetch_cycle.ts", import.meta.url),
        jobs.map((j) => ({ ...j, loop: loadClient === "fused" ? "fused" : "two-request" })),
      );
    const done = results.reduce((a, r) => a + r.cycles, 0);
    if (done !== n) throw new Error(`${side.name}: ${done} of ${n} cycles`);
    const mean = (xs: number[]) => xs.reduce((p, q) => p + q, 0) / Math.max(1, xs.length);
    const client = {
      claim: mean(results.flatMap((r) => r.claimMs)),
      claimP99: percentile(results.flatMap((r) => r.claimMs).sort((p, q) => p - q), 99),
      submit: mean(results.flatMap((r) => r.submitMs)),
    };
    return { rate: n / wallS, cpuS: cpuOf() - cpu0, client };
  };
  // Warm-up, then ANALYZE, as the bench does.
  for (const side of sides) await run(side, 1_000);
  await sql`ANALYZE`;
  for (let r = 0; r < rounds; r++) {
    const order = [0, 1, 1, 0][r % 4] === 0 ? [sides[0], sides[1]] : [sides[1], sides[0]];
    for (const side of order) {
      await sql`CHECKPOINT`;
      // Every server of the side (--b-servers): the latency sums and counts add up.
      const servers = [side.server, ...side.extra];
      const before = await serversMs(servers.map((s) => s.url));
      const wal0 = await walNow(sql);
      const { rate, cpuS, client } = await run(side, cycles);
      const wal1 = await walNow(sql);
      const after = await serversMs(servers.map((s) => s.url));
      const inServer = (k: "claim" | "submit") =>
        (after[k].sum - before[k].sum) / Math.max(1, after[k].count - before[k].count);
      side.rates.push(rate);
      side.cpuMs += 1000 * cpuS;
      side.n += cycles;
      const wal = wal0 && wal1
        ? `; WAL ${((wal1.bytes - wal0.bytes) / cycles / 1024).toFixed(1)} KiB/cycle, ` +
          `${((wal1.fpi - wal0.fpi) / cycles).toFixed(2)} full-page images/cycle`
        : "";
      console.log(
        `round ${r + 1} ${side.name}: ${rate.toFixed(0)} cycles/s, server ` +
          `${(1000 * cpuS / cycles).toFixed(3)} ms/cycle; mean ms claim ${
            client.claim.toFixed(2)
          } (in the handlers ${inServer("claim").toFixed(2)}, p99 ${
            client.claimP99.toFixed(1)
          }), submit ${client.submit.toFixed(2)} (${inServer("submit").toFixed(2)})${wal}`,
      );
    }
  }
  const [a, b] = sides;
  const ratios = a.rates.map((x, i) => b.rates[i] / x).sort((p, q) => p - q);
  const mean = (xs: number[]) => xs.reduce((p, q) => p + q, 0) / xs.length;
  for (const s of sides) {
    console.log(
      `${s.name} ${JSON.stringify(s.env)} ${s.flags.join(" ")}: mean ${mean(s.rates).toFixed(0)} ` +
        `cycles/s, server ${(s.cpuMs / s.n).toFixed(3)} ms/cycle`,
    );
  }
  console.log(
    `B/A per round: ${ratios.map((x) => x.toFixed(3)).join(" ")}; median ` +
      `${ratios[Math.floor(ratios.length / 2)].toFixed(3)}`,
  );
  for (const s of sides) for (const server of [s.server, ...s.extra]) await server.stop();
} finally {
  await sql.end();
  await db.stop();
}
