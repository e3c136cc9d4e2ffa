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
 * the requests already read from the network (setImmediate), or after `lingerMs` (timed by
 * lib/runtime/timer.ts: `setTimeout` would double 1 ms) when the latest batch had company: under
 * load a batch's answers bring the next requests back spread over about a millisecond (at 32
 * annotators 11 % more cycles/s). When callers are known to be on their way
 * (`expect`: the annotators a submit batch just answered, whose next claims follow), the lane
 * waits for them instead, up to `expectMs`, and sends as soon as the last arrives. A lone caller
 * never waits, nor do items submitted `together` (callers one finished batch released at once,
 * all in this turn).
 * Otherwise items join the next batch, sent when one finishes. Items that may not share a
 * statement (`exclusive`) wait for a later one.
 *
 * Deadlines (lib/db/scope.ts): an item whose request expires while queued leaves the queue with
 * `undefined` (its own path then fails with the deadline's reason, having written nothing). A sent
 * batch is held by each of its requests' scopes: the first to expire cancels it (PostgreSQL rolls
 * all of it back), and the others run their own statements within their own deadlines.
 */
import { setImmediate } from "node:timers";
import { after } from "../runtime/timer.ts";
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
   * batcher (any key) had more than one item; 0 (the default): never. Timed by
   * lib/runtime/timer.ts: 1 ms waits 1.1–1.3 ms (`setTimeout` would wait 2.1; decision 0022).
   */
  lingerMs?: number;
  /**
   * How long an idle lane under load waits for callers announced with `expect` (instead of
   * `lingerMs`); it sends as soon as they have all arrived. 0 (the default): expectations are
   * ignored.
   */
  expectMs?: number;
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
  /** While the lane waits for expected callers: sends now (the last of them arrived). */
  early?: () => void;
}

/** Callers announced for a lane: how many have not arrived yet, and until when to wait. */
interface Expected {
  n: number;
  until: number;
}

const cancelled = new Error("the batch was cancelled by a request's deadline");

export class Batcher<I, O> {
  readonly #opts: BatcherOptions<I, O>;
  readonly #lanes = new Map<string, Lane<I, O>>();
  readonly #expected = new Map<string, Expected>();
  /** Batches sent and items in them, for tests and the bench. */
  readonly stats = { batches: 0, items: 0 };
  /** Items in the latest batch sent: whether callers are arriving together. */
  #lastSize = 0;

  constructor(opts: BatcherOptions<I, O>) {
    this.#opts = opts;
  }

  /**
   * `n` callers will submit items of lane `key` shortly (within `expectMs`): until they have, or
   * until then, an idle lane under load holds its items for them rather than for `lingerMs`.
   */
  expect(key: string, n: number): void {
    const wait = this.#opts.expectMs ?? 0;
    if (wait <= 0 || n <= 0) return;
    const now = performance.now();
    const e = this.#expected.get(key);
    const pending = e && e.until > now ? e.n : 0;
    this.#expected.set(key, { n: Math.min(pending + n, this.#opts.maxSize), until: now + wait });
  }

  /** One caller of lane `key` arrived: how many announced ones are still to come (0: none). */
  #arrived(key: string): number {
    const e = this.#expected.get(key);
    if (!e) return 0;
    if (e.until <= performance.now() || --e.n <= 0) {
      this.#expected.delete(key);
      return 0;
    }
    return e.n;
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
    const toCome = this.#arrived(key);
    // The last expected caller is in: a lane waiting for them sends (after this turn's I/O).
    if (toCome === 0 && lane.early) lane.early();
    // Not at once: after the requests already read from the network (setImmediate runs after
    // the I/O callbacks), which arrive together when a batch's answers went out together.
    if (!lane.soon && !full) {
      lane.soon = true;
      let cancel: (() => void) | undefined;
      let gone = false;
      const go = () => {
        if (gone) return;
        gone = true;
        cancel?.();
        lane.early = undefined;
        lane.soon = false;
        this.#flush(key, lane);
      };
      const underLoad = this.#lastSize > 1 && !together;
      const expected = this.#expected.get(key);
      const linger = this.#opts.lingerMs ?? 0;
      if (underLoad && toCome > 0 && expected) {
        // Those who have not come by then are forgotten (#arrived: past `until`).
        cancel = after(expected.until - performance.now(), go);
        lane.early = () => setImmediate(go);
      } else if (underLoad && linger > 0) cancel = after(linger, go);
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
