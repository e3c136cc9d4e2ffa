/** Small numeric helpers shared by the benchmark's parts. */

/** Nearest-rank percentile of an ascending array (NaN when empty). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

export interface Latency {
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  count: number;
}

/** p50 / p99 / max of a set of durations in milliseconds, rounded to 0.01 ms. */
export function latency(ms: ArrayLike<number>): Latency {
  const sorted = Float64Array.from(ms).sort();
  return {
    p50_ms: round(percentile(sorted, 50), 2),
    p99_ms: round(percentile(sorted, 99), 2),
    max_ms: round(sorted.length ? sorted[sorted.length - 1] : NaN, 2),
    count: sorted.length,
  };
}

export function round(x: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
