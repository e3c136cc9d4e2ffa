/**
 * The connection pool: postgres.js on a libpq-style URL, with the reconnect, pipelining and TLS
 * choices this server depends on.
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
    // postgres.js's default backoff grows 3^n over failures shared by the whole pool, up to 20 s,
    // and a query arriving after an outage waits it out. A short, capped delay makes a request
    // fail fast (503) while the database is down and the pool recover within a quarter of a
    // second of it coming back (deno task stress, db scenario).
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

/** A PostgreSQL error as postgres.js reports it. */
export function isPgError(e: unknown): e is postgres.PostgresError {
  return e instanceof postgres.PostgresError;
}

/**
 * An error caused by what a statement's input holds: a data exception (22), an integrity
 * violation (23) or a transaction rollback (40: serialization failure, deadlock). Another
 * statement with other input may succeed; unlike a connection failure or a timeout, which would
 * fail it too.
 */
export function isInputError(e: unknown): boolean {
  return isPgError(e) && /^(22|23|40)/.test(e.code);
}
