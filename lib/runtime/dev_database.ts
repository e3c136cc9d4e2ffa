/**
 * Which database a process uses: the configured one, or (outside production, when none is
 * configured) the embedded development PostgreSQL under DATA_DIR. `deno task dev` and the
 * `deno task db:*` commands share this, so they always talk to the same database.
 */
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

export interface OpenOptions {
  /**
   * The caller handles SIGINT and SIGTERM itself and calls `stop()` (the server's graceful
   * shutdown, which needs the database until the last request is answered). Without this, a
   * signal stops the embedded server this process started and exits: a CLI interrupted mid-way
   * leaves no server behind.
   */
  handlesSignals?: boolean;
}

/**
 * The configured database URL, or the embedded development database under DATA_DIR/postgres:
 * the server already running for that directory (another `deno task dev`), or one started here
 * (and initialised on first use) on EMBEDDED_DB_PORT or the port that directory remembers.
 *
 * The embedded server's module is imported only on that path, so a process with a configured
 * database (every production one) never loads it.
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
  const { startEmbeddedPostgres } = await import("./embedded_pg.ts");
  const server = await startEmbeddedPostgres({
    dir: `${config.dataDir}/postgres`,
    port: config.embeddedDbPort,
    portSetting: "EMBEDDED_DB_PORT",
    database: EMBEDDED_DATABASE,
    log,
    stopOnSignals: !opts.handlesSignals,
  });
  log.info(
    server.started ? "embedded PostgreSQL started" : "embedded PostgreSQL already running",
    { data_dir: server.dataDir, port: server.port },
  );
  return { url: server.url, startedEmbedded: server.started, stop: () => server.stop() };
}
