/** The table of ratios against the targets: what `deno task bench` prints last. */
import { fmt, log } from "./lib/context.ts";
import { round } from "./lib/stats.ts";
import type { Options } from "./options.ts";
import type { checksSection } from "./sections/checks.ts";
import type { cycleSection } from "./sections/cycle.ts";
import type { ingestSection } from "./sections/ingest.ts";
import type { latencySection } from "./sections/latency.ts";
import type { ServerMemory } from "./sections/memory.ts";
import type { mixedMemorySection } from "./sections/mixed_memory.ts";
import type { reviewSection } from "./sections/review.ts";
import type { scaleSection } from "./sections/scale.ts";

export interface Ratio {
  measure: string;
  ours: string;
  reference: string;
  ratio: number | null;
  /** The targets. */
  must: string;
  aim: string;
  /** Whether the must-reach target is met; null: not measured (skipped); undefined: no target. */
  pass?: boolean | null;
}

/** The table's lines: a header, a rule, one line per row, columns aligned. */
export function tableLines(rows: Ratio[]): string[] {
  const header = ["measure", "ours", "reference", "ratio", "must", "aim", ""];
  const cells = rows.map((r) => [
    r.measure,
    r.ours,
    r.reference,
    r.ratio === null ? "" : r.ratio.toFixed(2),
    r.must,
    r.aim,
    r.pass === undefined ? "" : r.pass === null ? "skipped" : r.pass ? "ok" : "MISSED",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    c.map((x, i) => i === 0 || i === 2 ? x.padEnd(widths[i]) : x.padStart(widths[i])).join("  ")
      .trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(line)];
}

export function printTable(rows: Ratio[]): void {
  for (const l of tableLines(rows)) log(l);
}

/** The sections' figures; null for a section skipped. */
export interface Figures {
  cycle: Awaited<ReturnType<typeof cycleSection>>["figures"];
  low: Awaited<ReturnType<typeof latencySection>>["figures"] | null;
  scale: Awaited<ReturnType<typeof scaleSection>>["figures"] | null;
  ingest: Awaited<ReturnType<typeof ingestSection>> | null;
  review: Awaited<ReturnType<typeof reviewSection>>["figures"] | null;
  memory: ReturnType<ServerMemory["figures"]>;
  mixed: Awaited<ReturnType<typeof mixedMemorySection>>["figures"] | null;
  checks: Awaited<ReturnType<typeof checksSection>>;
}

type CycleFigures = NonNullable<Figures["cycle"]["ours"]>;
type NaiveFigures = NonNullable<Figures["cycle"]["ceiling"]>;

const MB_PER_MIB = 1.048576;

/**
 * The efficiency row: the naive cycle's machine CPU per cycle (PostgreSQL + pgbench) against
 * ours (PostgreSQL + the server), clients excluded (bench/lib/cpu.ts).
 */
export function cpuRow(
  measure: string,
  ours: CycleFigures | null,
  naive: NaiveFigures | null,
  skipped: string,
): Ratio {
  const row = { measure, must: ">= 1.0", aim: ">= 1.3" };
  if (!ours || !naive) {
    return { ...row, ours: skipped, reference: skipped, ratio: null, pass: null };
  }
  const o = ours.cpu_ms_per_cycle;
  const n = naive.cpu_ms_per_cycle;
  const client = naive.runner === "pgbench"
    ? `pgbench ${n.pgbench.toFixed(2)}`
    : `driver ${n.loadgen.toFixed(2)}`;
  const measured = Number.isFinite(o.machine) && Number.isFinite(n.machine) && o.machine > 0;
  const ratio = measured ? round(n.machine / o.machine, 3) : null;
  return {
    ...row,
    ours: `${o.machine.toFixed(2)} ms (PG ${o.pg.toFixed(2)} + server ${o.server.toFixed(2)})`,
    reference: `${n.machine.toFixed(2)} ms (PG ${n.pg.toFixed(2)} + ${client})`,
    ratio,
    pass: ratio === null ? null : ratio >= 1.0,
  };
}

const ratio = (a: number, b: number) => round(a / b, 3);

/**
 * The scale row (ours at the big dataset against a small one) and, beside it without a target,
 * the naive cycle's own ratio measured the same way: what a big queue costs raw SQL here.
 */
export function scaleRows(
  opts: Pick<Options, "images" | "smallImages">,
  scale: Figures["scale"],
): Ratio[] {
  const naive = scale?.naive;
  return [{
    measure: `claims/s at ${fmt(opts.images)} / at ${fmt(opts.smallImages)} images`,
    ours: scale ? `${fmt(scale.big.cycles_per_s)} claims/s` : "skipped",
    reference: scale ? `${fmt(scale.small.cycles_per_s)} claims/s` : "skipped",
    ratio: scale ? ratio(scale.big.cycles_per_s, scale.small.cycles_per_s) : null,
    must: ">= 0.85",
    aim: ">= 0.95",
    pass: scale ? scale.big.cycles_per_s / scale.small.cycles_per_s >= 0.85 : null,
  }, {
    measure: `  the same, the naive SQL cycle (${naive?.runner ?? "pgbench"})`,
    ours: naive ? `${fmt(naive.big.cycles_per_s)} cycles/s` : "skipped",
    reference: naive ? `${fmt(naive.small.cycles_per_s)} cycles/s` : "skipped",
    ratio: naive ? ratio(naive.big.cycles_per_s, naive.small.cycles_per_s) : null,
    must: "",
    aim: "",
  }];
}

/** One row per target, with the absolute figures beside the ratio. */
export function ratioRows(opts: Options, figures: Figures): Ratio[] {
  const { cycle, low, scale, ingest, review, memory, mixed, checks } = figures;
  const C = opts.concurrency;
  const rows: Ratio[] = [];
  const label = `${C} annotators, ${fmt(opts.images)} images`;
  const ceiling = cycle.ceiling;
  const throughput = (measure: string, ours: CycleFigures | null, must?: number, aim?: number) => {
    const measured = ours && ceiling;
    return {
      measure,
      ours: ours ? `${fmt(ours.cycles_per_s)} cycles/s` : "skipped",
      reference: ceiling ? `${fmt(ceiling.cycles_per_s)} cycles/s (${ceiling.runner})` : "skipped",
      ratio: measured ? ratio(ours.cycles_per_s, ceiling.cycles_per_s) : null,
      must: must === undefined ? "" : `>= ${must.toFixed(1)}`,
      aim: aim === undefined ? "" : `>= ${aim.toFixed(1)}`,
      pass: !measured ? null : must === undefined ? undefined : (
        ours.cycles_per_s / ceiling.cycles_per_s >= must
      ),
    };
  };
  rows.push(
    throughput(`HTTP cycle / naive SQL cycle (${label}, review_rate 0)`, cycle.ours, 0.8, 1.0),
  );
  rows.push(throughput(`  the same, plain fetch clients`, cycle.fetch));
  rows.push(cpuRow(
    "CPU per cycle, clients excluded: naive (PG + pgbench) / ours (PG + server)",
    cycle.ours,
    ceiling,
    "skipped",
  ));
  rows.push(cpuRow("  the same, plain fetch clients", cycle.fetch, ceiling, "skipped"));
  rows.push({
    measure: `HTTP cycle / naive SQL cycle (${C} annotators, review_rate 1)`,
    ours: review ? `${fmt(review.annotate.cycles_per_s)} cycles/s` : "skipped",
    reference: review?.ceiling ? `${fmt(review.ceiling.cycles_per_s)} cycles/s` : "skipped",
    ratio: review?.ceiling
      ? ratio(review.annotate.cycles_per_s, review.ceiling.cycles_per_s)
      : null,
    must: ">= 0.8",
    aim: ">= 1.0",
    pass: review?.ceiling
      ? review.annotate.cycles_per_s / review.ceiling.cycles_per_s >= 0.8
      : null,
  });
  rows.push({
    measure: `review cycle, ${review?.review.reviewers ?? 16} reviewers / annotation cycle`,
    ours: review
      ? `${fmt(review.review.cycles_per_s)} reviews/s (claim p50 ${review.review.claim.p50_ms}, ` +
        `submit p50 ${review.review.submit.p50_ms} ms)`
      : "skipped",
    reference: review ? `${fmt(review.annotate.cycles_per_s)} cycles/s` : "skipped",
    ratio: review ? ratio(review.review.cycles_per_s, review.annotate.cycles_per_s) : null,
    must: "none twice",
    aim: "",
    pass: review ? review.review.reviewed_twice === 0 : null,
  });
  rows.push({
    measure: `HTTP cycle / pg-boss fetch+complete (${C} concurrent)`,
    ours: cycle.ours ? `${fmt(cycle.ours.cycles_per_s)} cycles/s` : "skipped",
    reference: cycle.peer ? `${fmt(cycle.peer.cycles_per_s)} cycles/s (pg-boss)` : "skipped",
    ratio: cycle.ours && cycle.peer
      ? ratio(cycle.ours.cycles_per_s, cycle.peer.cycles_per_s)
      : null,
    must: ">= 1.2",
    aim: ">= 1.5",
    pass: cycle.ours && cycle.peer
      ? cycle.ours.cycles_per_s / cycle.peer.cycles_per_s >= 1.2
      : null,
  });
  const fused = cycle.fused;
  rows.push({
    measure: "fused cycle (submit with next) / two requests, plain fetch clients",
    ours: fused ? `${fmt(fused.cycles_per_s)} cycles/s` : "skipped",
    reference: fused && cycle.fetch
      ? `${fmt(cycle.fetch.cycles_per_s)} cycles/s`
      : cycle.fused_support.supported
      ? "skipped"
      : "not in this server's API",
    ratio: fused && cycle.fetch ? ratio(fused.cycles_per_s, cycle.fetch.cycles_per_s) : null,
    must: ">= 1.3",
    aim: "",
    pass: fused && cycle.fetch ? fused.cycles_per_s / cycle.fetch.cycles_per_s >= 1.3 : null,
  });
  rows.push(...scaleRows(opts, scale));
  rows.push({
    measure: `claim p50 / p99 at ${C} annotators`,
    ours: cycle.ours ? `${cycle.ours.claim.p50_ms} / ${cycle.ours.claim.p99_ms} ms` : "skipped",
    reference: cycle.ours
      ? `submit ${cycle.ours.submit.p50_ms} / ${cycle.ours.submit.p99_ms} ms`
      : "",
    ratio: null,
    must: "",
    aim: "",
  });
  rows.push({
    measure: `claim p99 at ${opts.lowConcurrency} annotators`,
    ours: low ? `${low.claim.p99_ms} ms (p50 ${low.claim.p50_ms})` : "skipped",
    reference: low ? `submit ${low.submit.p50_ms} / ${low.submit.p99_ms} ms` : "",
    ratio: null,
    must: "<= 15 ms",
    aim: "<= 5 ms",
    pass: low ? low.claim.p99_ms <= 15 : null,
  });
  rows.push({
    measure: `registerImages / raw COPY (${fmt(opts.ingestImages)} images)`,
    ours: ingest ? `${fmt(ingest.register.images_per_s)} images/s` : "skipped",
    reference: ingest ? `${fmt(ingest.copy.images_per_s)} images/s` : "skipped",
    ratio: ingest ? ratio(ingest.register.images_per_s, ingest.copy.images_per_s) : null,
    must: ">= 0.5",
    aim: ">= 0.8",
    pass: ingest ? ingest.register.images_per_s / ingest.copy.images_per_s >= 0.5 : null,
  });
  rows.push({
    measure: `setPriorities / raw unnest UPDATE (${fmt(opts.ingestImages)})`,
    ours: ingest ? `${fmt(ingest.set_priorities.rows_per_s)} rows/s` : "skipped",
    reference: ingest ? `${fmt(ingest.unnest_update.rows_per_s)} rows/s` : "skipped",
    ratio: ingest ? ratio(ingest.set_priorities.rows_per_s, ingest.unnest_update.rows_per_s) : null,
    must: ">= 0.7",
    aim: ">= 0.9",
    pass: ingest ? ingest.set_priorities.rows_per_s / ingest.unnest_update.rows_per_s >= 0.7 : null,
  });
  rows.push({
    measure: "server peak RSS through the bench (VmHWM)",
    ours: `${fmt(memory.peak_rss_mib, 1)} MiB`,
    reference: `${fmt(memory.peak_rss_after_cycles_mib, 1)} MiB after the cycles`,
    ratio: null,
    must: "<= 200 MB",
    aim: "<= 120 MB",
    pass: memory.peak_rss_mib * MB_PER_MIB <= 200,
  });
  rows.push({
    measure: mixed
      ? `server peak RSS: 2 x ${
        fmt(mixed.images_per_stream)
      } images at once, then ${mixed.annotators} annotators`
      : "server peak RSS under mixed load",
    ours: mixed ? `${fmt(mixed.peak_rss_mib, 1)} MiB` : "skipped",
    reference: mixed ? `${fmt(mixed.peak_rss_after_ingest_mib, 1)} MiB after the ingest` : "",
    ratio: null,
    must: "<= 200 MB",
    aim: "<= 120 MB",
    pass: mixed ? mixed.peak_rss_mib * MB_PER_MIB <= 200 : null,
  });
  rows.push({
    measure: "no image handed to two annotators",
    ours: checks.consistent ? "none" : "SOME",
    reference: `${fmt(checks.claimsChecked)} claims checked`,
    ratio: null,
    must: "none",
    aim: "",
    pass: checks.consistent,
  });
  return rows;
}
