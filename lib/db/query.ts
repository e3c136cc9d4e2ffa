/**
 * The one way to run SQL: a loaded statement (lib/db/statement.ts) with its parameters by name,
 * as a named prepared statement, through `one` / `many` / `exec` / `stream`. The handle is an
 * argument: the pool, or the `tx` that `transaction` hands out, so every query runs the same way
 * in or out of a transaction. Each query obeys the request's QueryScope (lib/db/scope.ts).
 */
import type postgres from "postgres";
import type { Db, Handle, Tx } from "./pool.ts";
import { QueryScope } from "./scope.ts";
import { bind, type Statement } from "./statement.ts";

export type { Db, Handle, Tx } from "./pool.ts";

/** What this process has running on the database now (the pool-usage gauges). */
export const activity = { queries: 0, transactions: 0 };

type Values = postgres.ParameterOrJSON<never>[];

async function run<R>(db: Handle, text: string, values: unknown[]) {
  const scope = QueryScope.current();
  if (scope?.expired) throw scope.expired;
  activity.queries++;
  // postgres.js names and caches the prepared statement per connection.
  const query = db.unsafe<R[]>(text, values as Values, { prepare: true });
  const release = scope?.hold(query);
  try {
    return await query;
  } catch (e) {
    // Cancelled by the request's deadline: fail with the deadline's reason (503 timeout). A
    // query still waiting for a connection is rejected by postgres.js itself with a plain
    // Error (code 57014, no PostgresError), which would otherwise surface as a 500.
    if (scope?.expired) throw scope.expired;
    throw e;
  } finally {
    activity.queries--;
    release?.();
  }
}

/** A statement returning at most one row. */
export async function one<P extends object, R>(
  db: Handle,
  s: Statement<P, R>,
  params: P,
): Promise<R | null> {
  const rows = await run<R>(db, s.text, bind(s, params));
  return rows.length ? rows[0] : null;
}

/** A statement returning any number of rows. */
export async function many<P extends object, R>(
  db: Handle,
  s: Statement<P, R>,
  params: P,
): Promise<R[]> {
  return await run<R>(db, s.text, bind(s, params));
}

/** A statement run for its effect; returns the affected row count. */
export async function exec<P extends object>(
  db: Handle,
  s: Statement<P, unknown>,
  params: P,
): Promise<number> {
  const result = await run<never>(db, s.text, bind(s, params));
  return result.count;
}

/** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
export async function transaction<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  activity.transactions++;
  try {
    return await db.begin(fn) as T;
  } finally {
    activity.transactions--;
  }
}

/**
 * A statement's rows in batches of up to `batchSize`, read through a server-side cursor (a
 * portal fetched `batchSize` rows at a time), so memory stays constant however many rows there
 * are. The statement runs when iteration starts and holds one connection until iteration ends
 * (breaking out of the loop closes the cursor). On the pool it runs in its own implicit
 * transaction, so every batch comes from one snapshot.
 */
export function stream<P extends object, R>(
  db: Handle,
  s: Statement<P, R>,
  params: P,
  batchSize = 500,
): AsyncIterable<R[]> {
  return db.unsafe<R[]>(s.text, bind(s, params) as Values, { prepare: true })
    .cursor(batchSize) as AsyncIterable<R[]>;
}
