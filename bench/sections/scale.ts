/**
 * Section 5: claims/s on small datasets (10,000 images) against a big one of its own, the same
 * number of cycles each, interleaved (small, big, small, big, ...) so load from elsewhere on the
 * machine hits both. Each round's small run has a dataset of its own and takes half of it, so no
 * small run starts on a queue an earlier round used (the big one's rounds together take 2 % of
 * it). The runs are long enough for the figure to rise above the machine's noise: 2 rounds of
 * 2,500 cycles on one small dataset (1.2 s a run) gave 0.82 to 1.03 over seven runs of the bench.
 */
import { checkpoint, type Ctx, fmt, log, summary } from "../lib/context.ts";
import { httpCycle, type HttpRun } from "./cycle.ts";

export async function scaleSection(ctx: Ctx, smallIds: string[], bigId: string) {
  const { opts } = ctx;
  const C = opts.concurrency;
  const smallRuns: HttpRun[] = [];
  const bigRuns: HttpRun[] = [];
  for (const [r, smallId] of smallIds.entries()) {
    await checkpoint(ctx.sql);
    smallRuns.push(await httpCycle(ctx, smallId, C, opts.scaleCycles));
    await checkpoint(ctx.sql);
    bigRuns.push(await httpCycle(ctx, bigId, C, opts.scaleCycles));
    ctx.noteRss(`scale round ${r + 1}`);
  }
  const scale = {
    small: { images: opts.smallImages, ...summary(smallRuns, "http") },
    big: { images: opts.images, ...summary(bigRuns, "http") },
  };
  log(
    `scale: ${fmt(opts.smallImages)} images ${fmt(scale.small.cycles_per_s)} claims/s, ` +
      `${fmt(opts.images)} images ${fmt(scale.big.cycles_per_s)} claims/s`,
  );
  return { smallRuns, bigRuns, figures: scale };
}
