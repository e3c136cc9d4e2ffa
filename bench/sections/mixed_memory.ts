/**
 * Section 8: the server's peak RSS under mixed load, as an outsider measures it. A server started
 * fresh for it (VmHWM counts from a process's start), as production starts it; two ML clients
 * register images at once, each in 10,000-image requests one after another (`fetch`, as
 * bench/workers/http_ingest.ts sends them); then 32 annotators cycle with plain `fetch` clients
 * on one of those datasets. The server's RSS is sampled every 50 ms meanwhile (the timeline goes
 * to --json) and its peak read after each phase. What holds the memory, and what bounding it
 * would take: docs/decisions/0014-memory-under-mixed-load.md.
 */
import { createDataset } from "../../testkit/api.ts";
import { rssParts } from "../../testkit/proc.ts";
import { type ServerProcess, startLoadServer } from "../../testkit/process.ts";
import { type Ctx, fmt, log } from "../lib/context.ts";
import { round } from "../lib/stats.ts";
import { runWorkers } from "../lib/workers.ts";
import type { IngestJob, IngestResult } from "../workers/http_ingest.ts";
import { httpCycle, type HttpRun } from "./cycle.ts";

/** The server's RSS every `everyMs` from now until `stop()`, and where its peak fell. */
export class RssSampler {
  readonly samples: [number, number][] = [];
  readonly #started = performance.now();
  readonly #timer: ReturnType<typeof setInterval>;
  #phase = "start";
  /** The highest sample, with its phase and its anonymous / file-backed split. */
  peak = { rss_mib: 0, phase: "", anon_mib: 0, file_mib: 0, at_s: 0 };

  constructor(readonly server: ServerProcess, everyMs = 50) {
    this.#timer = setInterval(() => this.sample(), everyMs);
    this.sample();
  }

  phase(name: string): void {
    this.#phase = name;
  }

  get currentPhase(): string {
    return this.#phase;
  }

  sample(): void {
    const rss = this.server.rssMiB();
    if (!Number.isFinite(rss)) return;
    const at = (performance.now() - this.#started) / 1000;
    this.samples.push([round(at, 2), round(rss, 1)]);
    if (rss > this.peak.rss_mib) {
      const parts = rssParts(this.server.pid);
      this.peak = {
        rss_mib: round(rss, 1),
        phase: this.#phase,
        anon_mib: round(parts.anon, 1),
        file_mib: round(parts.file, 1),
        at_s: round(at, 2),
      };
    }
  }

  stop(): void {
    clearInterval(this.#timer);
    this.sample();
  }
}

export interface MixedLoad {
  /** Images each of the two streams registers. */
  imagesPerStream: number;
  /** Annotator cycles after the ingest. */
  cycles: number;
  annotators: number;
}

/**
 * Runs the mixed load against `server` (fresh): the figures, and the annotators' run for the
 * checks. Shared with bench/experiments/memory_mixed.ts, which runs it under a profiler.
 */
export async function mixedLoad(
  ctx: Ctx,
  server: ServerProcess,
  load: MixedLoad,
  sampler = new RssSampler(server),
) {
  const base = server.url;
  const rssAtStart = server.rssMiB();
  try {
    const datasets = [
      await createDataset(base, ctx.adminToken, `bench-mixed-${server.pid}-1`),
      await createDataset(base, ctx.adminToken, `bench-mixed-${server.pid}-2`),
    ];
    sampler.phase("ingest");
    const ingest = await runWorkers<IngestJob, IngestResult>(
      new URL("../workers/http_ingest.ts", import.meta.url),
      datasets.map((datasetId, i) => ({
        kind: "register",
        base,
        token: ctx.adminToken,
        datasetId,
        batch: 10_000,
        tag: `mixed${i + 1}`,
        first: 1,
        count: load.imagesPerStream,
      })),
    );
    for (const r of ingest.results) {
      if (r.items !== load.imagesPerStream) {
        throw new Error(`mixed ingest: ${r.items} of ${load.imagesPerStream} images`);
      }
    }
    const peakAfterIngest = server.peakRssMiB();
    const rssAfterIngest = server.rssMiB();
    sampler.phase("annotators");
    const run = await httpCycle(
      { ...ctx, server },
      datasets[0],
      load.annotators,
      load.cycles,
      "fetch",
    );
    sampler.stop();
    const figures = {
      images_per_stream: load.imagesPerStream,
      streams: 2,
      annotators: load.annotators,
      cycles: load.cycles,
      rss_at_start_mib: round(rssAtStart, 1),
      peak_rss_after_ingest_mib: round(peakAfterIngest, 1),
      rss_after_ingest_mib: round(rssAfterIngest, 1),
      peak_rss_mib: round(server.peakRssMiB(), 1),
      rss_at_end_mib: round(server.rssMiB(), 1),
      ingest_images_per_s: round((2 * load.imagesPerStream) / ingest.wallS),
      cycles_per_s: round(run.cycles / run.wallS, 1),
      /** The fresh server's CPU per annotator cycle: what a memory setting costs. */
      server_cpu_ms_per_cycle: round((1000 * run.cpu.server) / run.cycles, 3),
      peak_sample: sampler.peak,
      timeline: sampler.samples,
    };
    return { run, datasetId: datasets[0], figures };
  } finally {
    sampler.stop();
  }
}

export async function mixedMemorySection(ctx: Ctx) {
  const { opts } = ctx;
  const server = await startLoadServer({
    databaseUrl: ctx.url,
    env: ctx.serverEnv,
    timeoutMs: 60_000,
  });
  try {
    const result = await mixedLoad(ctx, server, {
      imagesPerStream: opts.mixedImages,
      cycles: opts.mixedCycles,
      annotators: opts.concurrency,
    });
    const f = result.figures;
    log(
      `\nmixed load (a fresh server): 2 streams of ${fmt(f.images_per_stream)} images at once, ` +
        `then ${f.annotators} fetch annotators: peak RSS ${fmt(f.peak_rss_mib, 1)} MiB ` +
        `(after the ingest ${fmt(f.peak_rss_after_ingest_mib, 1)}, at start ` +
        `${fmt(f.rss_at_start_mib, 1)}; the peak in the ${f.peak_sample.phase}, ` +
        `${fmt(f.peak_sample.anon_mib, 1)} MiB anonymous, ${fmt(f.peak_sample.file_mib, 1)} ` +
        `file-backed)`,
    );
    return result as { run: HttpRun; datasetId: string; figures: typeof f };
  } finally {
    await server.stop();
  }
}
