/**
 * Section 5: claims/s on a small dataset (10,000 images) against a big one of its own (both
 * starting on an untouched queue), the same number of cycles each, interleaved (small, big,
 * small, big) so load from elsewhere on the machine hits both.
 */
import { checkpoint, type Ctx, fmt, log, summary } from "../lib/context.ts";
import { httpCycle, type HttpRun } from "./cycle.ts";

export async function scaleSection(ctx: Ctx, smallId: string, bigId: string) {
  const { opts } = ctx;
  const C = opts.concurrency;
  const smallRuns: HttpRun[] = [];
  const bigRuns: HttpRun[] = [];
  for (let r = 0; r < 2; r++) {
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
