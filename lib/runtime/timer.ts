/**
 * Timeouts with sub-millisecond precision, for the batcher's waits (lib/db/batcher.ts).
 *
 * Deno's `setTimeout` fires no sooner than about 2.1 ms for a delay of 0 or 1 ms and 3.2 ms for 2
 * (decision 0020), so a batch lane told to wait 1 ms held its items twice as long. Here one
 * worker thread sleeps in `Atomics.wait` until the earliest deadline and posts the slot that is
 * due; the callback runs on the main thread: a 1 ms wait ends after 1.1–1.3 ms (decision 0022).
 * The worker uses no CPU while it waits, and keeps the process alive only while a wait is pending,
 * as `setTimeout` does; it is a V8 isolate of its own, about 12 MiB of the server's RSS. When the
 * slots are all taken (more waits at once than the batcher ever has) or a worker cannot start,
 * `setTimeout` stands in.
 */
import { Worker } from "node:worker_threads";

const SLOTS = 64;

/**
 * The worker's loop, over three views of one SharedArrayBuffer: `ctl[0]` counts changes (the
 * main thread bumps it and notifies on every new wait), `gen[i]` is slot i's generation (0: free)
 * and `delay[i]` its delay in ms, written before its generation. The worker dates each new
 * generation by its own clock, so the two threads never compare clocks.
 */
const WORKER = `
const { parentPort, workerData: { buffer, slots } } = require("node:worker_threads");
const ctl = new Int32Array(buffer, 0, 1);
const gen = new Int32Array(buffer, 8, slots);
const delay = new Float64Array(buffer, 8 + 8 * slots, slots);
const known = new Int32Array(slots);
const posted = new Int32Array(slots);
const due = new Float64Array(slots);
for (;;) {
  const seen = Atomics.load(ctl, 0);
  const now = performance.now();
  let next = Infinity;
  const fire = [];
  for (let i = 0; i < slots; i++) {
    const g = Atomics.load(gen, i);
    if (g === 0 || posted[i] === g) continue;
    if (known[i] !== g) {
      known[i] = g;
      due[i] = now + delay[i];
    }
    if (due[i] <= now) {
      posted[i] = g;
      fire.push(i * 0x40000000 + g);
    } else if (due[i] < next) next = due[i];
  }
  // Several due at once (the worker woke late): in the order of their deadlines.
  fire.sort((a, b) => due[Math.floor(a / 0x40000000)] - due[Math.floor(b / 0x40000000)]);
  for (const id of fire) parentPort.postMessage(id);
  Atomics.wait(ctl, 0, seen, next === Infinity ? undefined : next - now);
}
`;

interface Wait {
  gen: number;
  fn: () => void;
  /** performance.now() when it is due: what `setTimeout` needs if the worker is lost. */
  at: number;
  timer?: ReturnType<typeof setTimeout>;
}

interface Slots {
  ctl: Int32Array;
  gen: Int32Array;
  delay: Float64Array;
  callbacks: (Wait | undefined)[];
  free: number[];
  generation: number;
  worker: Worker;
}

let slots: Slots | null | undefined;

function start(): Slots | null {
  try {
    const buffer = new SharedArrayBuffer(8 + 16 * SLOTS);
    const worker = new Worker(WORKER, { eval: true, workerData: { buffer, slots: SLOTS } });
    worker.unref();
    const s: Slots = {
      ctl: new Int32Array(buffer, 0, 1),
      gen: new Int32Array(buffer, 8, SLOTS),
      delay: new Float64Array(buffer, 8 + 8 * SLOTS, SLOTS),
      callbacks: new Array(SLOTS),
      free: Array.from({ length: SLOTS }, (_, i) => SLOTS - 1 - i),
      generation: 0,
      worker,
    };
    worker.on("message", (id: number) => {
      const i = Math.floor(id / 0x40000000);
      const entry = s.callbacks[i];
      if (entry?.gen !== id % 0x40000000 || entry.timer !== undefined) return;
      release(s, i);
      entry.fn();
    });
    // A worker that fails or ends (it never should) hands its pending waits to `setTimeout`, and
    // so does every later wait.
    const lost = () => {
      if (slots !== s) return;
      slots = null;
      s.callbacks.forEach((entry, i) => {
        if (!entry || entry.timer !== undefined) return;
        entry.timer = setTimeout(() => {
          if (s.callbacks[i] !== entry) return;
          release(s, i);
          entry.fn();
        }, Math.max(0, entry.at - performance.now()));
      });
    };
    worker.on("error", lost);
    worker.on("exit", lost);
    return s;
  } catch {
    return null;
  }
}

function release(s: Slots, i: number): void {
  s.callbacks[i] = undefined;
  Atomics.store(s.gen, i, 0);
  s.free.push(i);
  if (s.free.length === SLOTS) s.worker.unref();
}

/** Calls `fn` once `ms` have passed, unless the returned function is called first. */
export function after(ms: number, fn: () => void): () => void {
  if (slots === undefined) slots = start();
  const s = slots;
  const i = s?.free.pop();
  if (!s || i === undefined) {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  }
  if (s.free.length === SLOTS - 1) s.worker.ref();
  const gen = s.generation = (s.generation % 0x3fffffff) + 1;
  s.callbacks[i] = { gen, fn, at: performance.now() + ms };
  s.delay[i] = Math.max(0, ms);
  Atomics.store(s.gen, i, gen);
  Atomics.add(s.ctl, 0, 1);
  Atomics.notify(s.ctl, 0);
  return () => {
    const entry = s.callbacks[i];
    if (entry?.gen !== gen) return;
    clearTimeout(entry.timer);
    release(s, i);
  };
}
