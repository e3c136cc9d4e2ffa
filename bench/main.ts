/**
 * `deno task bench [--quick] [--json FILE]`: the annotator loop measured against the raw-SQL
 * ceiling and a peer, on each PostgreSQL setup in turn (the embedded server with its defaults, and
 * Debian's PostgreSQL 15 with production-like settings; --quick the embedded one only), each with
 * a server of its own. See bench/README.md for what each section measures and how to read the
 * table.
 *
 *  1. cycle   N annotators (32) over HTTP, each looping claim -> submit one bbox with its own JWT,
 *             against the server as its own process, on a dataset of 1,000,000 images (100,000
 *             with --quick) with random priorities: with the lean HTTP/1.1 client, with plain
 *             fetch clients, and fused (the submit bringing the next claim) when the API has it.
 *  2. ceiling bench/naive_cycle.sql (three autocommitted statements) by pgbench, or the driver.
 *  3. peer    pg-boss fetch + complete, same concurrency, same number of jobs, random priorities.
 *             1-3 run in interleaved rounds, so load from elsewhere on the machine hits them all,
 *             each run's CPU metered per party from /proc (sections/cycle.ts, lib/cpu.ts).
 *  4. low     claim latency at 8 annotators (sections/latency.ts).
 *  5. scale   claims/s on a 10,000-image dataset vs the big one (interleaved, same cycle count;
 *             sections/scale.ts), and the naive cycle's on datasets of its own beside it.
 *  6. ingest  registerImages (10,000 per request) vs COPY; setPriorities vs UPDATE ... unnest
 *             (sections/ingest.ts).
 *  7. memory  the server's peak RSS through it all (VmHWM; sections/memory.ts).
 *  8. mixed   a fresh server's peak RSS under two registerImages streams at once, then 32
 *             annotators (sections/mixed_memory.ts).
 *  9. review  the cycle on a review_rate 1 dataset against the ceiling, then 16 reviewers'
 *             claimNextReview -> submitReview (sections/review.ts).
 * Then it checks the claims table (no image handed out twice, sections/checks.ts), prints one
 * table of ratios per setup (table.ts) and writes it all, with the claim's plans
 * (sections/plans.ts), as JSON with --json.
 */
import postgres from "postgres";
import { loadAverage } from "../testkit/proc.ts";
import { type ServerProcess, startLoadServer } from "../testkit/process.ts";
import { adminToken, call } from "../testkit/api.ts";
import { type Receiver, startReceiver } from "../testkit/webhook_receiver.ts";
import { fmt, log } from "./lib/context.ts";
import { MEDIA_ENV, probeMedia } from "./lib/media.ts";
import { type BenchDatabase, openBenchDatabase, type Setup, unavailable } from "./lib/database.ts";
import { findPgbench } from "./lib/pgbench.ts";
import { round } from "./lib/stats.ts";
import { type Options, parseArgs } from "./options.ts";
import { checksSection } from "./sections/checks.ts";
import { cycleSection } from "./sections/cycle.ts";
import { ingestSection } from "./sections/ingest.ts";
import { latencySection } from "./sections/latency.ts";
import { ServerMemory } from "./sections/memory.ts";
import { mixedMemorySection } from "./sections/mixed_memory.ts";
import { plansSection } from "./sections/plans.ts";
import { reviewSection } from "./sections/review.ts";
import { scaleSection } from "./sections/scale.ts";
import { prepareDatabase, setUp } from "./sections/setup.ts";
import { printTable, type Ratio, ratioRows } from "./table.ts";

type Pgbench = Awaited<ReturnType<typeof findPgbench>>;

/** Every section on one PostgreSQL setup, with a server of its own: its table and figures. */
async function benchOn(opts: Options, setup: Setup, pgbench: Pgbench) {
  let database: BenchDatabase | undefined;
  let sql: postgres.Sql | undefined;
  let server: ServerProcess | undefined;
  let receiver: Receiver | undefined;
  const started = performance.now();
  try {
    database = await openBenchDatabase(
      setup,
      Deno.env.get("DATABASE_URL") || undefined,
      opts.pgStats,
    );
    const url = database.url;
    sql = postgres(url, { max: 4, onnotice: () => {} });
    const { version, settings, title } = await prepareDatabase(opts, sql, database, pgbench);
    const serverEnv = {
      ...(opts.webhook ? { WEBHOOK_ALLOW_PRIVATE_TARGETS: "true" } : {}),
      ...(opts.media ? MEDIA_ENV : {}),
      ...opts.serverEnv,
    };
    server = await startLoadServer({ databaseUrl: url, env: serverEnv, timeoutMs: 60_000 });
    if (opts.media) log(`media: ${await probeMedia(server.url, await adminToken(server))}`);
    if (opts.webhook) {
      receiver = startReceiver();
      const hook = await call(server.url, await adminToken(server), "POST", "/api/v1/webhooks", {
        url: receiver.url,
        events: ["annotation.created"],
      });
      if (hook.status !== 201) throw new Error(`createWebhook: ${JSON.stringify(hook.body)}`);
      log(`webhook: annotation.created of every dataset, delivered to ${receiver.url}`);
    }
    const memory = new ServerMemory(server);
    const noteRss = (run: string) => memory.note(run);
    const { ctx, datasets, explainUserId, warmups } = await setUp(opts, {
      sql,
      url,
      server,
      serverEnv,
      pgbench,
      noteRss,
    });

    const cycle = await cycleSection(ctx, datasets.cycle);
    memory.cyclesDone();
    const low = opts.skip.has("low") ? null : await latencySection(ctx, datasets.big);
    const scale = datasets.scale
      ? await scaleSection(ctx, datasets.scale.small, datasets.scale.big, datasets.scale.naive)
      : null;
    const explain = await plansSection(ctx, datasets.big, explainUserId);
    const ingest = opts.skip.has("ingest") ? null : await ingestSection(ctx);
    const mixed = opts.skip.has("mixed") ? null : await mixedMemorySection(ctx);
    const checks = await checksSection(ctx, [
      // Each big dataset's runs, its warm-up included.
      ["big", datasets.big, [...warmups.lean, ...cycle.httpRuns.lean, ...(low ? [low.run] : [])]],
      ["big-fetch", datasets.cycle.fetch, [...warmups.fetch, ...cycle.httpRuns.fetch]],
      ["big-fused", datasets.cycle.fused, [...warmups.fused, ...cycle.httpRuns.fused]],
      ...(datasets.scale?.small ?? []).map((id, r) =>
        [`scale-small-${r + 1}`, id, scale ? [scale.smallRuns[r]] : []] as const
      ),
      ["scale-big", datasets.scale?.big, scale?.bigRuns ?? []],
      ["mixed", mixed?.datasetId, mixed ? [mixed.run] : []],
    ], cycle.naiveRuns > 0);
    // Enough images that the annotators never drain it: every cycle completes one.
    const review = opts.skip.has("review")
      ? null
      : await reviewSection(ctx, Math.max(20_000, 2 * opts.cycles));
    const figures = {
      cycle: cycle.figures,
      low: low?.figures ?? null,
      scale: scale?.figures ?? null,
      ingest,
      review: review?.figures ?? null,
      memory: memory.figures(),
      mixed: mixed?.figures ?? null,
      checks,
    };
    if (receiver) {
      const [{ n }] = await sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM annotations`;
      log(
        `\nwebhook: ${fmt(receiver.received.length)} deliveries received for ${fmt(n)} ` +
          `annotations so far (the rest still queued: delivery follows the cycle, it is not in it)`,
      );
    }
    const rows = ratioRows(opts, figures);
    const errors = server.lines.filter((l) => l.includes('"error"'));
    if (errors.length) log(`server errors:\n${errors.slice(-10).join("\n")}`);
    return {
      title,
      rows,
      consistent: checks.consistent,
      json: {
        setup: database.kind,
        postgres: version,
        started_with: database.given,
        settings,
        ratios: rows,
        ...figures,
        checks: checks.checks,
        statements: cycle.statements,
        client_duplicates: checks.clientDuplicates,
        explain,
        wall_s: round((performance.now() - started) / 1000, 1),
      },
    };
  } finally {
    await server?.stop();
    await receiver?.close();
    await sql?.end({ timeout: 5 });
    await database?.stop();
  }
}

async function main(opts: Options): Promise<number> {
  const started = performance.now();
  const loadBefore = loadAverage();
  const pgbench = await findPgbench();
  const external = !!Deno.env.get("DATABASE_URL");
  const setups = external ? [opts.setups[0]] : opts.setups;
  log(
    `bench: ${opts.quick ? "quick" : "full"} run, ${fmt(opts.images)} images, ` +
      `${opts.concurrency} annotators, datasets with access ${opts.access}, ` +
      `${opts.media ? "presigned s3:// media, " : ""}${opts.webhook ? "one webhook, " : ""}on ${
        external ? "DATABASE_URL" : setups.join(" and then ")
      } PostgreSQL`,
  );
  log(`machine: ${navigator.hardwareConcurrency} CPUs, load average ${loadBefore.join(" ")}`);
  const results: Awaited<ReturnType<typeof benchOn>>[] = [];
  const missing: { setup: Setup; why: string }[] = [];
  for (const setup of setups) {
    const why = external ? undefined : unavailable(setup);
    if (why) {
      log(`\n${setup}: skipped, ${why}`);
      missing.push({ setup, why });
      continue;
    }
    results.push(await benchOn(opts, setup, pgbench));
  }
  const loadAfter = loadAverage();
  for (const r of results) {
    log(`\n${r.title}`);
    printTable(r.rows as Ratio[]);
  }
  for (const m of missing) log(`\n${m.setup}: not run, ${m.why}`);
  log(
    `\nload average before ${loadBefore.join(" ")}, after ${loadAfter.join(" ")}; ` +
      `${fmt((performance.now() - started) / 1000)} s in all`,
  );

  if (opts.json) {
    const result = {
      benchmark: "annotation-server bench",
      mode: opts.quick ? "quick" : "full",
      date: new Date().toISOString(),
      cpus: navigator.hardwareConcurrency,
      load_average: { before: loadBefore, after: loadAfter },
      options: { ...opts, skip: [...opts.skip] },
      pgbench: pgbench?.version ?? null,
      setups: results.map((r) => r.json),
      not_run: missing,
      wall_s: round((performance.now() - started) / 1000, 1),
    };
    await Deno.writeTextFile(opts.json, JSON.stringify(result, null, 2) + "\n");
    log(`figures written to ${opts.json}`);
  }
  return results.every((r) => r.consistent) ? 0 : 1;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(parseArgs(Deno.args)));
  } catch (e) {
    console.error(`bench: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    Deno.exit(1);
  }
}
