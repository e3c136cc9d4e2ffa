/**
 * Section 5: claims/s on small datasets (10,000 images) against a big one of its own, the same
 * number of cycles each, interleaved (small, big, small, big, ...) so load from elsewhere on the
 * machine hits both. Each round's small run has a dataset of its own and takes half of it, so no
 * small run starts on a queue an earlier round used (the big one's rounds together take 2 % of
 * it). The runs are long enough for the figure to rise above the machine's noise: 2 rounds of
 * 2,500 cycles on one small dataset (1.2 s a run) gave 0.82 to 1.03 over seven runs of the bench.
 *
 * With the ceiling, the naive cycle runs the same rounds on datasets of its own in naive_images:
 * what a big queue costs raw SQL on this machine, after the same CHECKPOINT (the first write to
 * each page after one writes the whole page to the WAL, and a big queue's claims and submits
 * touch pages scattered over the table).
 */
import { checkpoint, type Ctx, fmt, log, summary } from "../lib/context.ts";
import { httpCycle, type HttpRun, naiveCycle } from "./cycle.ts";

type NaiveRun = Awaited<ReturnType<typeof naiveCycle>>;

export async function scaleSection(
  ctx: Ctx,
  smallIds: string[],
  bigId: string,
  naive?: { small: string[]; big: string },
) {
  const { opts } = ctx;
  const C = opts.concurrency;
  const smallRuns: HttpRun[] = [];
  const bigRuns: HttpRun[] = [];
  const naiveSmall: NaiveRun[] = [];
  const naiveBig: NaiveRun[] = [];
  for (const [r, smallId] of smallIds.entries()) {
    await checkpoint(ctx.sql);
    smallRuns.push(await httpCycle(ctx, smallId, C, opts.scaleCycles));
    await checkpoint(ctx.sql);
    bigRuns.push(await httpCycle(ctx, bigId, C, opts.scaleCycles));
    ctx.noteRss(`scale round ${r + 1}`);
    if (naive) {
      await checkpoint(ctx.sql);
      naiveSmall.push(await naiveCycle(ctx, C, opts.scaleCycles, naive.small[r]));
      await checkpoint(ctx.sql);
      naiveBig.push(await naiveCycle(ctx, C, opts.scaleCycles, naive.big));
    }
  }
  const runner = naiveSmall[0]?.runner === "pgbench" ? "pgbench" : "driver";
  const scale = {
    small: { images: opts.smallImages, ...summary(smallRuns, "http") },
    big: { images: opts.images, ...summary(bigRuns, "http") },
    naive: naive
      ? {
        runner,
        small: { images: opts.smallImages, ...summary(naiveSmall, runner) },
        big: { images: opts.images, ...summary(naiveBig, runner) },
      }
      : null,
  };
  log(
    `scale: ${fmt(opts.smallImages)} images ${fmt(scale.small.cycles_per_s)} claims/s, ` +
      `${fmt(opts.images)} images ${fmt(scale.big.cycles_per_s)} claims/s` +
      (scale.naive
        ? `; the naive cycle ${fmt(scale.naive.small.cycles_per_s)} and ` +
          `${fmt(scale.naive.big.cycles_per_s)} cycles/s`
        : ""),
  );
  return { smallRuns, bigRuns, figures: scale };
}
