/**
 * Load generators run in Workers, so building requests and reading answers never competes with
 * the coordinating thread, and the clients of one measurement start together. A worker script
 * calls `serveWorker(prepare, run)`; the coordinator calls `runWorkers(script, jobs)`: every
 * worker prepares (untimed), then all are told to go at once, and the wall time runs from that
 * moment until the last one is done.
 */

type ToWorker<J> = { kind: "prepare"; job: J } | { kind: "go" };
type FromWorker<R> =
  | { kind: "ready" }
  | { kind: "done"; result: R }
  | { kind: "failed"; error: string };

interface WorkerScope<J, R> {
  onmessage: ((e: MessageEvent<ToWorker<J>>) => void) | null;
  postMessage(m: FromWorker<R>): void;
}

/** Inside a worker: `prepare` once with the job, then `run` on "go"; errors are reported back. */
export function serveWorker<J, S, R>(
  prepare: (job: J) => Promise<S> | S,
  run: (state: S) => Promise<R>,
): void {
  const scope = globalThis as unknown as WorkerScope<J, R>;
  let state: S;
  scope.onmessage = async (e) => {
    try {
      if (e.data.kind === "prepare") {
        state = await prepare(e.data.job);
        scope.postMessage({ kind: "ready" });
      } else {
        scope.postMessage({ kind: "done", result: await run(state) });
      }
    } catch (err) {
      scope.postMessage({
        kind: "failed",
        error: err instanceof Error ? `${err.message}\n${err.stack ?? ""}` : String(err),
      });
    }
  };
}

/** One worker per job; resolves with the wall time of the "go" part and each worker's result. */
export async function runWorkers<J, R>(
  script: URL,
  jobs: J[],
): Promise<{ wallS: number; results: R[] }> {
  const workers = jobs.map(() => new Worker(script, { type: "module" }));
  try {
    const next = (w: Worker) =>
      new Promise<FromWorker<R>>((resolve) => {
        w.onmessage = (e: MessageEvent<FromWorker<R>>) => resolve(e.data);
        w.onerror = (e) => {
          e.preventDefault();
          resolve({ kind: "failed", error: e.message });
        };
      });
    const check = (m: FromWorker<R>): FromWorker<R> => {
      if (m.kind === "failed") throw new Error(`load generator failed: ${m.error}`);
      return m;
    };
    const ready = workers.map(next);
    workers.forEach((w, i) => w.postMessage({ kind: "prepare", job: jobs[i] } as ToWorker<J>));
    (await Promise.all(ready)).forEach(check);

    const done = workers.map(next);
    const started = performance.now();
    workers.forEach((w) => w.postMessage({ kind: "go" } as ToWorker<J>));
    const answers = (await Promise.all(done)).map(check);
    const wallS = (performance.now() - started) / 1000;
    const results = answers.map((m) => {
      if (m.kind !== "done") throw new Error(`unexpected message ${m.kind}`);
      return m.result;
    });
    return { wallS, results };
  } finally {
    workers.forEach((w) => w.terminate());
  }
}

/** Splits `items` into `n` nearly equal groups (round robin). */
export function split<T>(items: T[], n: number): T[][] {
  const groups: T[][] = Array.from({ length: Math.max(1, Math.min(n, items.length)) }, () => []);
  items.forEach((item, i) => groups[i % groups.length].push(item));
  return groups;
}

/** A counter shared by workers: how many more operations may start. */
export function budget(n: number): SharedArrayBuffer {
  const buf = new SharedArrayBuffer(4);
  Atomics.store(new Int32Array(buf), 0, n);
  return buf;
}

/** Takes one operation from a shared budget; false when it is spent. */
export function take(counter: Int32Array): boolean {
  return Atomics.sub(counter, 0, 1) > 0;
}
