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

/** A rate and how the table shows it. */
interface Rate {
  value: number;
  text: string;
}

const rate = (value: number, unit: string): Rate => ({ value, text: `${fmt(value)} ${unit}` });

/** A run's rate; null when it did not run. */
const runRate = (run: { cycles_per_s: number } | null | undefined, unit = "cycles/s") =>
  run ? rate(run.cycles_per_s, unit) : null;

/** A target's ratio as the table shows it: 1 as 1.0, 0.85 as 0.85. */
const atLeast = (n: number) => `>= ${Number.isInteger(n * 10) ? n.toFixed(1) : String(n)}`;

/**
 * Ours against a reference, as rates: their ratio, and whether it reaches `target.must` (no
 * target: no status). A side not measured reads `missing` and leaves the row without a ratio.
 */
function versus(
  measure: string,
  ours: Rate | null | undefined,
  reference: Rate | null | undefined,
  target?: { must: number; aim?: number },
  missing = "skipped",
): Ratio {
  const measured = ours && reference;
  return {
    measure,
    ours: ours?.text ?? missing,
    reference: reference?.text ?? missing,
    ratio: measured ? ratio(ours.value, reference.value) : null,
    must: target ? atLeast(target.must) : "",
    aim: target?.aim === undefined ? "" : atLeast(target.aim),
    pass: !measured ? null : target ? ours.value / reference.value >= target.must : undefined,
  };
}

/**
 * The scale row (ours at the big dataset against a small one) and, beside it without a target,
 * the naive cycle's own ratio measured the same way: what a big queue costs raw SQL here.
 */
export function scaleRows(
  opts: Pick<Options, "images" | "smallImages">,
  scale: Figures["scale"],
): Ratio[] {
  const naive = scale?.naive;
  return [
    versus(
      `claims/s at ${fmt(opts.images)} / at ${fmt(opts.smallImages)} images`,
      runRate(scale?.big, "claims/s"),
      runRate(scale?.small, "claims/s"),
      { must: 0.85, aim: 0.95 },
    ),
    versus(
      `  the same, the naive SQL cycle (${naive?.runner ?? "pgbench"})`,
      runRate(naive?.big),
      runRate(naive?.small),
    ),
  ];
}

/** One row per target, with the absolute figures beside the ratio. */
export function ratioRows(opts: Options, figures: Figures): Ratio[] {
  const { cycle, low, scale, ingest, review, memory, mixed, checks } = figures;
  const C = opts.concurrency;
  const rows: Ratio[] = [];
  const label = `${C} annotators, ${fmt(opts.images)} images`;
  const ceiling = cycle.ceiling;
  const naive = ceiling && runRate(ceiling, `cycles/s (${ceiling.runner})`);
  rows.push(
    versus(
      `HTTP cycle / naive SQL cycle (${label}, review_rate 0)`,
      runRate(cycle.ours),
      naive,
      { must: 0.8, aim: 1.0 },
    ),
  );
  rows.push(versus(`  the same, plain fetch clients`, runRate(cycle.fetch), naive));
  rows.push(cpuRow(
    "CPU per cycle, clients excluded: naive (PG + pgbench) / ours (PG + server)",
    cycle.ours,
    ceiling,
    "skipped",
  ));
  rows.push(cpuRow("  the same, plain fetch clients", cycle.fetch, ceiling, "skipped"));
  rows.push(versus(
    `HTTP cycle / naive SQL cycle (${C} annotators, review_rate 1)`,
    runRate(review?.annotate),
    runRate(review?.ceiling),
    { must: 0.8, aim: 1.0 },
  ));
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
  rows.push(versus(
    `HTTP cycle / pg-boss fetch+complete (${C} concurrent)`,
    runRate(cycle.ours),
    runRate(cycle.peer, "cycles/s (pg-boss)"),
    { must: 1.2, aim: 1.5 },
  ));
  const fused = runRate(cycle.fused);
  rows.push(versus(
    "fused cycle (submit with next) / two requests, plain fetch clients",
    fused,
    fused && runRate(cycle.fetch),
    { must: 1.3 },
    cycle.fused_support.supported ? "skipped" : "not in this server's API",
  ));
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
  rows.push(versus(
    `registerImages / raw COPY (${fmt(opts.ingestImages)} images)`,
    ingest && rate(ingest.register.images_per_s, "images/s"),
    ingest && rate(ingest.copy.images_per_s, "images/s"),
    { must: 0.5, aim: 0.8 },
  ));
  rows.push(versus(
    `setPriorities / raw unnest UPDATE (${fmt(opts.ingestImages)})`,
    ingest && rate(ingest.set_priorities.rows_per_s, "rows/s"),
    ingest && rate(ingest.unnest_update.rows_per_s, "rows/s"),
    { must: 0.7, aim: 0.9 },
  ));
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
