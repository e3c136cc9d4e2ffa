/**
 * Gathers requests that arrive while earlier ones run and sends them as one statement: at 32
 * annotators one claim statement for eight callers costs PostgreSQL much less than eight, and one
 * commit (one WAL flush) covers eight submits (docs/decisions).
 *
 * A batch is only an optimisation. Each item's answer is its outcome, exactly what its own
 * statement would have answered, or `undefined`: "not decided here, run your own statement" (the
 * batch statement left it undecided, the batch failed for what an item holds, or a deadline
 * cancelled it). Callers keep their single-statement path and take it on `undefined`, so every
 * refusal, retry and diagnosis stays there.
 *
 * When a lane (a key) has fewer than `maxInFlight` batches running, its queued items go out after
 * the requests already read from the network (setImmediate), or after `lingerMs` when the latest
 * batch had company: under load a batch's answers bring the next requests back spread over about a
 * millisecond (at 32 annotators 11 % more cycles/s). A lone caller never waits, nor do items
 * submitted `together` (callers one finished batch released at once, all in this turn).
 * Otherwise items join the next batch, sent when one finishes. Items that may not share a
 * statement (`exclusive`) wait for a later one.
 *
 * Deadlines (lib/db/scope.ts): an item whose request expires while queued leaves the queue with
 * `undefined` (its own path then fails with the deadline's reason, having written nothing). A sent
 * batch is held by each of its requests' scopes: the first to expire cancels it (PostgreSQL rolls
 * all of it back), and the others run their own statements within their own deadlines.
 */
import { setImmediate } from "node:timers";
import { QueryScope } from "./scope.ts";

export interface BatcherOptions<I, O> {
  /** Items of one key may share a batch (a dataset's claims). */
  key(item: I): string;
  /** Values no two items of one batch may share (a user, an image). */
  exclusive(item: I): readonly string[];
  /** Runs one batch: an answer per item, in order (`undefined`: run it alone). */
  run(key: string, items: I[]): Promise<(O | undefined)[]>;
  maxSize: number;
  maxInFlight: number;
  /**
   * Milliseconds an item arriving at an idle lane waits for more, when the latest batch of this
   * batcher (any key) had more than one item; 0 (the default): never.
   */
  lingerMs?: number;
  /**
   * A batch running longer than this holds its lane up: the items queued behind it, and those
   * that arrive until it ends, run on their own (default 1,000 ms), so while the database is
   * failing a request does not wait for a stuck batch and then for its own statement.
   */
  stallMs?: number;
  /**
   * Whether a failed batch's items each run on their own (answer `undefined`) rather than all
   * fail with its error: true when the error came from what one item holds (a data or integrity
   * error, a deadlock), which another statement without that item would not meet. An error that
   * would fail each item's own statement too (the database unreachable, a timeout) is every
   * item's answer. Default: never.
   */
  runAlone?: (error: unknown) => boolean;
}

interface Pending<I, O> {
  item: I;
  scope: QueryScope | undefined;
  resolve(answer: O | undefined): void;
  reject(error: unknown): void;
}

interface Lane<I, O> {
  queue: Pending<I, O>[];
  inFlight: number;
  /** A flush is scheduled for after the requests that have already arrived. */
  soon: boolean;
  /** When the latest batch was sent (performance.now()). */
  sentAt: number;
  /** Releases the queue if the running batch is still running at stallMs. */
  watch: ReturnType<typeof setTimeout> | undefined;
}

const cancelled = new Error("the batch was cancelled by a request's deadline");

export class Batcher<I, O> {
  readonly #opts: BatcherOptions<I, O>;
  readonly #lanes = new Map<string, Lane<I, O>>();
  /** Batches sent and items in them, for tests and the bench. */
  readonly stats = { batches: 0, items: 0 };
  /** Items in the latest batch sent: whether callers are arriving together. */
  #lastSize = 0;

  constructor(opts: BatcherOptions<I, O>) {
    this.#opts = opts;
  }

  /**
   * The item's outcome, or `undefined`: run its own statement. `together`: the item arrives with
   * all the company it will have (the callers a finished batch released at once), so an idle
   * lane sends it after the requests already read, without lingering for more.
   */
  submit(item: I, together = false): Promise<O | undefined> {
    const key = this.#opts.key(item);
    let lane = this.#lanes.get(key);
    if (!lane) {
      lane = { queue: [], inFlight: 0, soon: false, sentAt: 0, watch: undefined };
      this.#lanes.set(key, lane);
    }
    const scope = QueryScope.current();
    if (scope?.expired) return Promise.resolve(undefined);
    const stallMs = this.#opts.stallMs ?? 1_000;
    const full = lane.inFlight >= this.#opts.maxInFlight;
    if (full && performance.now() - lane.sentAt > stallMs) return Promise.resolve(undefined);
    const answer = new Promise<O | undefined>((resolve, reject) => {
      lane.queue.push({ item, scope, resolve, reject });
    });
    // Not at once: after the requests already read from the network (setImmediate runs after
    // the I/O callbacks), which arrive together when a batch's answers went out together.
    if (!lane.soon && !full) {
      lane.soon = true;
      const go = () => {
        lane.soon = false;
        this.#flush(key, lane);
      };
      const linger = this.#opts.lingerMs ?? 0;
      if (linger > 0 && this.#lastSize > 1 && !together) setTimeout(go, linger);
      else setImmediate(go);
    }
    if (full && !lane.watch) {
      const sentAt = lane.sentAt;
      lane.watch = setTimeout(() => {
        lane.watch = undefined;
        if (lane.sentAt !== sentAt || lane.inFlight < this.#opts.maxInFlight) return;
        for (const p of lane.queue.splice(0)) p.resolve(undefined);
      }, Math.max(0, sentAt + stallMs - performance.now()));
    }
    return answer;
  }

  #flush(key: string, lane: Lane<I, O>): void {
    while (lane.inFlight < this.#opts.maxInFlight && lane.queue.length) {
      const batch: Pending<I, O>[] = [];
      const rest: Pending<I, O>[] = [];
      const taken = new Set<string>();
      for (const p of lane.queue) {
        if (p.scope?.expired) {
          p.resolve(undefined);
          continue;
        }
        const values = this.#opts.exclusive(p.item);
        if (batch.length >= this.#opts.maxSize || values.some((v) => taken.has(v))) {
          rest.push(p);
          continue;
        }
        for (const v of values) taken.add(v);
        batch.push(p);
      }
      lane.queue = rest;
      if (!batch.length) break;
      lane.inFlight++;
      lane.sentAt = performance.now();
      clearTimeout(lane.watch);
      lane.watch = undefined;
      this.#send(key, batch).finally(() => {
        lane.inFlight--;
        if (lane.queue.length) this.#flush(key, lane);
        if (!lane.queue.length) {
          clearTimeout(lane.watch);
          lane.watch = undefined;
          if (!lane.inFlight && !lane.soon) this.#lanes.delete(key);
        }
      });
    }
  }

  async #send(key: string, batch: Pending<I, O>[]): Promise<void> {
    this.stats.batches++;
    this.stats.items += batch.length;
    this.#lastSize = batch.length;
    // The batch's own scope: no one request's context governs it (this may run inside any of
    // them), but any of them expiring cancels it.
    const own = new QueryScope();
    const handle = { cancel: () => own.expire(cancelled) };
    const releases = batch.map((p) => p.scope?.hold(handle));
    let answers: (O | undefined)[] = [];
    let failure: unknown = null;
    try {
      answers = await own.run(() => this.#opts.run(key, batch.map((p) => p.item)));
    } catch (e) {
      // Nothing of it was written.
      const alone = own.expired || (this.#opts.runAlone?.(e) ?? false);
      if (!alone) failure = e ?? null;
      answers = [];
    } finally {
      for (const release of releases) release?.();
    }
    if (failure !== null) batch.forEach((p) => p.reject(failure));
    else batch.forEach((p, i) => p.resolve(answers[i]));
  }
}
