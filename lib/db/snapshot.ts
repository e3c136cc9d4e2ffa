/**
 * Streamed reads from one database snapshot (exports), bounded so clients that stop reading cannot
 * take the pool.
 */
import type postgres from "postgres";
import type { Db, Handle } from "./pool.ts";
import { activity } from "./query.ts";

/**
 * Bounds on snapshot streams (readSnapshot), so clients that stop reading cannot take the pool:
 * at most `share` of the pool's connections stream at once (the others wait for a turn without
 * holding a connection), and a stream whose consumer has not asked for more for `idleMs` is
 * ended, giving its connection back (the response is cut short): without these, 16 stalled export
 * downloads hold all 10 connections and every other request times out. Mutable for tests.
 */
export const snapshotLimits = { share: 0.5, idleMs: 30_000 };

/** A counting semaphore per pool. */
const streamTurns = new WeakMap<Db, { free: number; waiting: (() => void)[] }>();

async function takeTurn(db: Db): Promise<() => void> {
  let turns = streamTurns.get(db);
  if (!turns) {
    const max = Number((db as unknown as { options?: { max?: number } }).options?.max ?? 10);
    turns = { free: Math.max(1, Math.floor(max * snapshotLimits.share)), waiting: [] };
    streamTurns.set(db, turns);
  }
  const t = turns;
  if (t.free > 0) t.free--;
  else await new Promise<void>((resolve) => t.waiting.push(resolve));
  let given = false;
  return () => {
    if (given) return;
    given = true;
    const next = t.waiting.shift();
    if (next) next();
    else t.free++;
  };
}

/**
 * Yields what `fn` yields, with every statement `fn` runs inside one read-only REPEATABLE READ
 * transaction on a connection of its own: they all see the same snapshot. Made for streamed
 * responses: the transaction lasts exactly as long as the iteration, and a consumer that stops
 * early (a client that hangs up) ends it and gives the connection back. A consumer that stops
 * asking without hanging up is cut off after `snapshotLimits.idleMs` (the next read throws),
 * and only a share of the pool streams at once (`snapshotLimits`).
 */
export function readSnapshot<T>(
  db: Db,
  fn: (tx: Handle) => AsyncIterable<T>,
): AsyncIterableIterator<T> {
  const inner = snapshotStream(db, fn);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let idle = false;
  const stopTimer = () => {
    clearTimeout(timer);
    timer = undefined;
  };
  const wrapper: AsyncIterableIterator<T> = {
    [Symbol.asyncIterator]: () => wrapper,
    async next() {
      stopTimer();
      if (idle) {
        throw new Error(`the consumer stopped reading for ${snapshotLimits.idleMs} ms`);
      }
      const step = await inner.next();
      if (!step.done) {
        timer = setTimeout(() => {
          idle = true;
          // Runs the generator's finally: rollback, connection and turn given back.
          inner.return(undefined).catch(() => {});
        }, snapshotLimits.idleMs);
      }
      return step;
    },
    async return(value?: unknown) {
      stopTimer();
      await inner.return(undefined);
      return { done: true, value: value as T };
    },
    async throw(e?: unknown) {
      stopTimer();
      await inner.return(undefined);
      throw e;
    },
  };
  return wrapper;
}

async function* snapshotStream<T>(
  db: Db,
  fn: (tx: Handle) => AsyncIterable<T>,
): AsyncGenerator<T> {
  const done = await takeTurn(db);
  let conn: postgres.ReservedSql | undefined;
  let open = false;
  try {
    conn = await db.reserve();
    activity.transactions++;
    try {
      await conn.unsafe("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      open = true;
      yield* fn(conn);
      await conn.unsafe("COMMIT");
      open = false;
    } finally {
      activity.transactions--;
      // It wrote nothing, so rolling back loses nothing; a broken connection is discarded.
      if (open) await conn.unsafe("ROLLBACK").catch(() => {});
    }
  } finally {
    conn?.release();
    done();
  }
}
