/**
 * The one way to run SQL. Statements live in `sql/<resource>/<verb_noun>.sql`; each is read once,
 * when the module that wraps it is imported, and runs as a named prepared statement through
 * `one` / `many` / `exec`. The handle is an argument: the pool, or the `tx` that `transaction`
 * hands out, so every query runs the same way in or out of a transaction.
 */
import postgres from "postgres";

// deno-lint-ignore ban-types
export type Db = postgres.Sql<{}>;
// deno-lint-ignore ban-types
export type Tx = postgres.TransactionSql<{}>;
/** Anything a query can run on: the pool or an open transaction. */
export type Handle = Db | Tx;

export interface PoolOptions {
  max: number;
  connectTimeoutSeconds: number;
  statementTimeoutMs: number;
  applicationName?: string;
}

export function connect(url: string, opts: PoolOptions): Db {
  return postgres(url, {
    max: opts.max,
    connect_timeout: opts.connectTimeoutSeconds,
    idle_timeout: 60,
    // Keep the server quiet about notices (e.g. "relation already exists, skipping").
    onnotice: () => {},
    connection: {
      application_name: opts.applicationName ?? "annotation-server",
      statement_timeout: opts.statementTimeoutMs,
    },
  });
}

const SQL_ROOT = new URL("../sql/", import.meta.url);

/** Reads `sql/<name>.sql` once. Called at module top level, so a missing file fails at start-up. */
export function sqlFile(name: string): string {
  return Deno.readTextFileSync(new URL(`${name}.sql`, SQL_ROOT));
}

type Params = readonly unknown[];

/** What this process has running on the database now (the pool-usage gauges). */
export const activity = { queries: 0, transactions: 0 };

async function run<R>(db: Handle, text: string, params: Params) {
  activity.queries++;
  try {
    // postgres.js names and caches the prepared statement per connection.
    return await db.unsafe<R[]>(text, params as postgres.ParameterOrJSON<never>[], {
      prepare: true,
    });
  } finally {
    activity.queries--;
  }
}

/** A statement returning at most one row. */
export async function one<R>(db: Handle, text: string, params: Params): Promise<R | null> {
  const rows = await run<R>(db, text, params);
  return rows.length ? rows[0] : null;
}

/** A statement returning any number of rows. */
export async function many<R>(db: Handle, text: string, params: Params): Promise<R[]> {
  return await run<R>(db, text, params);
}

/** A statement run for its effect; returns the affected row count. */
export async function exec(db: Handle, text: string, params: Params): Promise<number> {
  const result = await run<never>(db, text, params);
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
 * Yields what `fn` yields, with every statement `fn` runs inside one read-only REPEATABLE READ
 * transaction on a connection of its own: they all see the same snapshot. Made for streamed
 * responses: the transaction lasts exactly as long as the iteration, and a consumer that stops
 * early (a client that hangs up) ends it and gives the connection back.
 */
export async function* readSnapshot<T>(
  db: Db,
  fn: (tx: Handle) => AsyncIterable<T>,
): AsyncGenerator<T> {
  const conn = await db.reserve();
  activity.transactions++;
  let open = false;
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
    conn.release();
  }
}

/** A PostgreSQL error as postgres.js reports it. */
export function isPgError(e: unknown): e is postgres.PostgresError {
  return e instanceof postgres.PostgresError;
}

/**
 * A statement's rows in batches of up to `batchSize`, read through a server-side cursor (a
 * portal fetched `batchSize` rows at a time), so memory stays constant however many rows there
 * are. The statement runs when iteration starts and holds one connection until iteration ends
 * (breaking out of the loop closes the cursor). On the pool it runs in its own implicit
 * transaction, so every batch comes from one snapshot.
 */
export function stream<R>(
  db: Handle,
  text: string,
  params: Params,
  batchSize = 500,
): AsyncIterable<R[]> {
  return db.unsafe<R[]>(text, params as postgres.ParameterOrJSON<never>[], { prepare: true })
    .cursor(batchSize) as AsyncIterable<R[]>;
}
