/**
 * Section 7: the server's memory. Its resident memory at start, after each measured run (does
 * it level off or keep growing?), and its peak (VmHWM) after the cycles and at the end.
 */
import type { ServerProcess } from "../../testkit/process.ts";
import { round } from "../lib/stats.ts";

export class ServerMemory {
  readonly #server: ServerProcess;
  readonly #atStart: number;
  readonly #afterEach: { run: string; rss_mib: number; peak_mib: number }[] = [];
  #peakAfterCycles = NaN;

  constructor(server: ServerProcess) {
    this.#server = server;
    this.#atStart = server.rssMiB();
  }

  /** After a measured run. */
  note(run: string): void {
    this.#afterEach.push({
      run,
      rss_mib: round(this.#server.rssMiB(), 1),
      peak_mib: round(this.#server.peakRssMiB(), 1),
    });
  }

  /** After the cycle's rounds. */
  cyclesDone(): void {
    this.#peakAfterCycles = this.#server.peakRssMiB();
  }

  figures() {
    return {
      rss_at_start_mib: round(this.#atStart, 1),
      after_each_run: this.#afterEach,
      peak_rss_mib: round(this.#server.peakRssMiB(), 1),
      peak_rss_after_cycles_mib: round(this.#peakAfterCycles, 1),
      rss_at_end_mib: round(this.#server.rssMiB(), 1),
    };
  }
}
