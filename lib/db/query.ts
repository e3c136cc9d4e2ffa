/**
 * The one way to run SQL. Statements live in `sql/<resource>/<verb_noun>.sql`; each is read once,
 * when the module that wraps it is imported, and runs as a named prepared statement through
 * `one` / `many` / `exec`. The handle is an argument: the pool, or the `tx` that `transaction`
 * hands out, so every query runs the same way in or out of a transaction.
 */
import { AsyncLocalStorage } from "node:async_hooks";
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

/**
 * A pool on a libpq-style URL. `sslmode` (disable | require | verify-full) and `sslrootcert` (a
 * CA bundle, read here) are taken out of the URL and become postgres.js's `ssl` option;
 * lib/runtime/config.ts has already checked them, so a bad value here is a programming error.
 */
export function connect(url: string, opts: PoolOptions): Db {
  const { url: plain, ssl } = tlsFromUrl(url);
  return postgres(plain, {
    max: opts.max,
    connect_timeout: opts.connectTimeoutSeconds,
    idle_timeout: 60,
    // postgres.js waits before reconnecting, up to 20 s after repeated failures (its default
    // backoff grows 3^n over failures shared by the whole pool). A query arriving after an
    // outage then waits out that delay: requests hung for up to 20 s while the database was
    // down and for as long after it was back (stress/scenarios/db_restart.ts). A short, capped
    // delay makes each request fail fast (503) while the database is down and the pool recover
    // within a quarter of a second of it coming back.
    backoff: reconnectDelaySeconds,
    // At most one query queued behind the running one on a connection (postgres.js pipelines up
    // to 100). When a request's deadline cancels two or more queries queued in a row there,
    // postgres.js 3.4.9 loses track of the first: it never settles, and every later query on
    // that connection is handed the result of the one before it (another request's rows).
    // tests/query_cancel_test.ts; seen as queries stuck in flight after stress's burst.
    // (An option postgres.js reads but does not type.)
    ...{ max_pipeline: 1 },
    ssl,
    // Keep the server quiet about notices (e.g. "relation already exists, skipping").
    onnotice: () => {},
    connection: {
      application_name: opts.applicationName ?? "annotation-server",
      statement_timeout: opts.statementTimeoutMs,
    },
  });
}

/** Seconds before the next connection attempt after `failures` failed ones: 40 ms up to 250 ms. */
export function reconnectDelaySeconds(failures: number): number {
  return Math.min(0.02 * 2 ** Math.max(1, failures), 0.25);
}

type Ssl = false | "require" | { ca: string[]; rejectUnauthorized: true; host: string };

/** Splits a PEM bundle (RDS's global-bundle.pem holds over a hundred) into its certificates. */
function pemCertificates(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
}

/** The URL without its TLS parameters, and postgres.js's `ssl` option for them. */
export function tlsFromUrl(url: string): { url: string; ssl: Ssl } {
  const u = new URL(url);
  const mode = u.searchParams.get("sslmode") ?? "disable";
  const rootCert = u.searchParams.get("sslrootcert");
  u.searchParams.delete("sslmode");
  u.searchParams.delete("sslrootcert");
  const plain = u.toString();
  switch (mode) {
    case "disable":
      return { url: plain, ssl: false };
    case "require":
      // Encrypted, but any certificate is accepted (libpq's `require`).
      return { url: plain, ssl: "require" };
    case "verify-full": {
      if (!rootCert) throw new Error("sslmode=verify-full needs sslrootcert (DB_SSLROOTCERT)");
      const ca = pemCertificates(Deno.readTextFileSync(rootCert));
      if (!ca.length) throw new Error(`${rootCert} holds no PEM certificate`);
      // The certificate must chain to `ca` and name `host` (a DNS name or an IP address). Given
      // explicitly: with no `host`, node:tls would check an IP address against "localhost".
      const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
      return { url: plain, ssl: { ca, rejectUnauthorized: true, host } };
    }
    default:
      throw new Error(`sslmode=${mode} is not supported (use disable, require or verify-full)`);
  }
}

const SQL_ROOT = new URL("../../sql/", import.meta.url);

/** Reads `sql/<name>.sql` once. Called at module top level, so a missing file fails at start-up. */
export function sqlFile(name: string): string {
  return Deno.readTextFileSync(new URL(`${name}.sql`, SQL_ROOT));
}

type Params = readonly unknown[];

/** What this process has running on the database now (the pool-usage gauges). */
export const activity = { queries: 0, transactions: 0 };

/**
 * A request's hold on its queries: once `expired` is set (the request's deadline passed, by
 * expireQueries), the queries it has running are cancelled (PostgreSQL rolls each back) and any
 * it starts afterwards fail at once with that error. `inFlight` counts its running queries. Set
 * by lib/http/app.ts around each API request, found by `run` through async context, so query
 * functions need no extra argument. Plain fields, no AbortController: this is on every request.
 */
export interface QueryScope {
  expired: Error | null;
  inFlight: number;
  running: Set<{ cancel(): void }>;
}

export function newQueryScope(): QueryScope {
  return { expired: null, inFlight: 0, running: new Set() };
}

/** The deadline passed: cancel what `scope` runs, refuse what it starts, with `reason`. */
export function expireQueries(scope: QueryScope, reason: Error): void {
  scope.expired = reason;
  for (const query of scope.running) query.cancel();
}

const queryScope = new AsyncLocalStorage<QueryScope>();

/** The scope governing queries started here, if any (lib/db/batcher.ts). */
export function currentQueryScope(): QueryScope | undefined {
  return queryScope.getStore();
}

/** Runs `fn` with `scope` governing every query it runs (see QueryScope). */
export function withQueryScope<T>(scope: QueryScope, fn: () => Promise<T>): Promise<T> {
  return queryScope.run(scope, fn);
}

async function run<R>(db: Handle, text: string, params: Params) {
  const scope = queryScope.getStore();
  if (scope?.expired) throw scope.expired;
  activity.queries++;
  // postgres.js names and caches the prepared statement per connection.
  const query = db.unsafe<R[]>(text, params as postgres.ParameterOrJSON<never>[], {
    prepare: true,
  });
  if (scope) {
    scope.inFlight++;
    scope.running.add(query);
  }
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
    if (scope) {
      scope.inFlight--;
      scope.running.delete(query);
    }
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
 * Bounds on snapshot streams (readSnapshot), so clients that stop reading cannot take the pool:
 * at most `share` of the pool's connections stream at once (the others wait for a turn without
 * holding a connection), and a stream whose consumer has not asked for more for `idleMs` is
 * ended, giving its connection back (the response is cut short). Before these, 16 stalled export
 * downloads held all 10 connections and every other request timed out
 * (stress/scenarios/limits.ts). Mutable for tests.
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
