/** The table of ratios against the targets: what `deno task bench` prints last. */
import { fmt, log } from "./lib/context.ts";
import { round } from "./lib/stats.ts";
import type { Options } from "./options.ts";
import type { checksSection } from "./sections/checks.ts";
import type { cycleSection } from "./sections/cycle.ts";
import type { ingestSection } from "./sections/ingest.ts";
import type { latencySection } from "./sections/latency.ts";
import type { ServerMemory } from "./sections/memory.ts";
import type { scaleSection } from "./sections/scale.ts";

export interface Ratio {
  measure: string;
  ours: string;
  reference: string;
  ratio: number | null;
  /** The targets. */
  must: string;
  aim: string;
  pass: boolean | null;
}

export function printTable(rows: Ratio[]): void {
  const header = ["measure", "ours", "reference", "ratio", "must", "aim", ""];
  const cells = rows.map((r) => [
    r.measure,
    r.ours,
    r.reference,
    r.ratio === null ? "" : r.ratio.toFixed(2),
    r.must,
    r.aim,
    r.pass === null ? "skipped" : r.pass ? "ok" : "MISSED",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    c.map((x, i) => i === 0 || i === 2 ? x.padEnd(widths[i]) : x.padStart(widths[i])).join("  ")
      .trimEnd();
  log(line(header));
  log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const c of cells) log(line(c));
}

/** The sections' figures; null for a section skipped. */
export interface Figures {
  cycle: Awaited<ReturnType<typeof cycleSection>>["figures"];
  low: Awaited<ReturnType<typeof latencySection>>["figures"] | null;
  scale: Awaited<ReturnType<typeof scaleSection>>["figures"] | null;
  ingest: Awaited<ReturnType<typeof ingestSection>> | null;
  memory: ReturnType<ServerMemory["figures"]>;
  checks: Awaited<ReturnType<typeof checksSection>>;
}

/** One row per target, with the absolute figures beside the ratio. */
export function ratioRows(opts: Options, figures: Figures): Ratio[] {
  const { cycle, low, scale, ingest, memory, checks } = figures;
  const C = opts.concurrency;
  const ratio = (a: number, b: number) => round(a / b, 3);
  const rows: Ratio[] = [];
  const label = `${C} annotators, ${fmt(opts.images)} images`;
  rows.push({
    measure: `HTTP cycle / naive SQL cycle (${label})`,
    ours: `${fmt(cycle.ours.cycles_per_s)} cycles/s`,
    reference: cycle.ceiling
      ? `${fmt(cycle.ceiling.cycles_per_s)} cycles/s (${cycle.ceiling.runner})`
      : "skipped",
    ratio: cycle.ceiling ? ratio(cycle.ours.cycles_per_s, cycle.ceiling.cycles_per_s) : null,
    must: ">= 0.8",
    aim: ">= 1.0",
    pass: cycle.ceiling ? cycle.ours.cycles_per_s / cycle.ceiling.cycles_per_s >= 0.8 : null,
  });
  rows.push({
    measure: `HTTP cycle / pg-boss fetch+complete (${C} concurrent)`,
    ours: `${fmt(cycle.ours.cycles_per_s)} cycles/s`,
    reference: cycle.peer ? `${fmt(cycle.peer.cycles_per_s)} cycles/s (pg-boss)` : "skipped",
    ratio: cycle.peer ? ratio(cycle.ours.cycles_per_s, cycle.peer.cycles_per_s) : null,
    must: ">= 1.2",
    aim: ">= 1.5",
    pass: cycle.peer ? cycle.ours.cycles_per_s / cycle.peer.cycles_per_s >= 1.2 : null,
  });
  rows.push({
    measure: `claims/s at ${fmt(opts.images)} / at ${fmt(opts.smallImages)} images`,
    ours: scale ? `${fmt(scale.big.cycles_per_s)} claims/s` : "skipped",
    reference: scale ? `${fmt(scale.small.cycles_per_s)} claims/s` : "skipped",
    ratio: scale ? ratio(scale.big.cycles_per_s, scale.small.cycles_per_s) : null,
    must: ">= 0.85",
    aim: ">= 0.95",
    pass: scale ? scale.big.cycles_per_s / scale.small.cycles_per_s >= 0.85 : null,
  });
  rows.push({
    measure: `claim p50 / p99 at ${C} annotators`,
    ours: `${cycle.ours.claim.p50_ms} / ${cycle.ours.claim.p99_ms} ms`,
    reference: `submit ${cycle.ours.submit.p50_ms} / ${cycle.ours.submit.p99_ms} ms`,
    ratio: null,
    must: "",
    aim: "",
    pass: true,
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
    measure: "server peak RSS (VmHWM)",
    ours: `${fmt(memory.peak_rss_mib, 1)} MiB`,
    reference: `${fmt(memory.peak_rss_after_cycles_mib, 1)} MiB after the cycles`,
    ratio: null,
    must: "<= 200 MB",
    aim: "<= 120 MB",
    pass: memory.peak_rss_mib * 1.048576 <= 200,
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
