/** Section 4: claim latency at low concurrency (8 annotators), on the big dataset. */
import { checkpoint, type Ctx, fmt, log, summary } from "../lib/context.ts";
import { latency } from "../lib/stats.ts";
import { httpCycle } from "./cycle.ts";

export async function latencySection(ctx: Ctx, datasetId: string) {
  const { opts } = ctx;
  await checkpoint(ctx.sql);
  const run = await httpCycle(ctx, datasetId, opts.lowConcurrency, opts.lowCycles);
  ctx.noteRss("low concurrency");
  const low = {
    concurrency: opts.lowConcurrency,
    ...summary([run], "http"),
    claim: latency(run.claimMs),
    submit: latency(run.submitMs),
  };
  log(
    `\nlow: ${opts.lowConcurrency} concurrent, ${fmt(low.cycles_per_s)} cycles/s, ` +
      `claim p50 ${low.claim.p50_ms} ms p99 ${low.claim.p99_ms} ms`,
  );
  return { run, figures: low };
}
