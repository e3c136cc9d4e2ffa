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

function run<R>(db: Handle, text: string, params: Params) {
  // postgres.js names and caches the prepared statement per connection.
  return db.unsafe<R[]>(text, params as postgres.ParameterOrJSON<never>[], { prepare: true });
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
  return await db.begin(fn) as T;
}

/** A PostgreSQL error as postgres.js reports it. */
export function isPgError(e: unknown): e is postgres.PostgresError {
  return e instanceof postgres.PostgresError;
}
