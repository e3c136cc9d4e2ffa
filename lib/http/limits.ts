/** In-process bounds the request pipeline (lib/http/app.ts) applies: deadlines and a body budget. */

/** How often request deadlines are checked: a timeout answers up to this much late. */
export const DEADLINE_TICK_MS = 20;

/**
 * The deadlines of the requests in flight, checked by one interval timer instead of a timer per
 * request (a timer and an AbortController per request cost ~0.05 ms of CPU per request in the
 * annotator cycle, docs/decisions/0009-cost-per-request.md). The timer runs only while requests
 * are in flight and never keeps the process alive.
 */
export class Deadlines {
  #entries = new Set<{ at: number; fire: () => void }>();
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Calls `fire` once `ms` have passed, unless the returned function is called first. */
  add(ms: number, fire: () => void): () => void {
    const entry = { at: performance.now() + ms, fire };
    this.#entries.add(entry);
    if (this.#timer === undefined) {
      const timer = setInterval(() => this.#tick(), DEADLINE_TICK_MS);
      Deno.unrefTimer(timer);
      this.#timer = timer;
    }
    return () => this.#entries.delete(entry);
  }

  #tick(): void {
    const now = performance.now();
    for (const entry of this.#entries) {
      if (entry.at <= now) {
        this.#entries.delete(entry);
        entry.fire();
      }
    }
    if (!this.#entries.size) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

/** Bodies up to this size skip the large-body budget. */
export const LARGE_BODY_BYTES = 256 * 1024;

/** A budget of bytes taken and given back in FIFO order. */
export class ByteBudget {
  #free: number;
  #waiting: { size: number; grant: (ok: boolean) => void }[] = [];
  constructor(readonly total: number) {
    this.#free = total;
  }

  /** Resolves with a release function once `size` is free, or null after `timeoutMs`. */
  async take(size: number, timeoutMs: number): Promise<(() => void) | null> {
    const release = () => {
      this.#free += size;
      this.#grant();
    };
    if (!this.#waiting.length && this.#free >= size) {
      this.#free -= size;
      return release;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const entry = { size, grant: (_ok: boolean) => {} };
    const ok = await new Promise<boolean>((resolve) => {
      entry.grant = resolve;
      this.#waiting.push(entry);
      timer = setTimeout(() => {
        this.#waiting.splice(this.#waiting.indexOf(entry), 1);
        resolve(false);
        this.#grant();
      }, timeoutMs);
    });
    clearTimeout(timer);
    return ok ? release : null;
  }

  #grant(): void {
    while (this.#waiting.length && this.#free >= this.#waiting[0].size) {
      const next = this.#waiting.shift()!;
      this.#free -= next.size;
      next.grant(true);
    }
  }
}

/**
 * After a large body, a full garbage collection on the next turn of the event loop (at most one
 * pending), when V8 runs with --expose-gc (deno task start does). A parsed body's copies (bytes,
 * text, value: about three times its size) live in V8's old generation, which grows by a factor
 * before it collects again: twelve 30 MiB bodies one after another take the server from 114 to
 * 613 MiB without this, although only one is parsed at a time. Collecting right after costs a few
 * tens of milliseconds per large body and nothing on any other request.
 */
export function collectLater(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc || pending) return;
  pending = true;
  setTimeout(() => {
    pending = false;
    gc();
  }, 0);
}
let pending = false;
