/**
 * Which database a process uses: the configured one, or (outside production, when none is
 * configured) the embedded development PostgreSQL under DATA_DIR. `deno task dev` and the
 * `deno task db:*` commands share this, so they always talk to the same database.
 */
import postgres from "postgres";
import type { Config } from "./config.ts";
import { startEmbeddedPostgres } from "./embedded_pg.ts";
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

/**
 * The configured database URL, or the embedded development database: reused when it is already
 * running, started (and initialised on first use) otherwise.
 */
export async function openDatabaseUrl(config: Config, log: Logger): Promise<OpenDatabase> {
  if (config.databaseUrl) {
    return { url: config.databaseUrl, startedEmbedded: false, stop: () => Promise.resolve() };
  }
  if (config.env === "production") {
    throw new Error("no database configured: set DATABASE_URL (or DB_USER, DB_HOST and DB_NAME)");
  }
  const dir = `${config.dataDir}/postgres`;
  const url = embeddedUrl(config);
  if (await answers(url)) {
    log.info("embedded PostgreSQL already running", { data_dir: dir, port: config.embeddedDbPort });
    return { url, startedEmbedded: false, stop: () => Promise.resolve() };
  }
  const server = await startEmbeddedPostgres({
    dir,
    port: config.embeddedDbPort,
    database: EMBEDDED_DATABASE,
  });
  log.info("embedded PostgreSQL started", { data_dir: dir, port: config.embeddedDbPort });
  return { url: server.url, startedEmbedded: true, stop: () => server.stop() };
}
