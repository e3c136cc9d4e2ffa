/**
 * The server: configuration, database, HTTP. `deno task dev` runs this with no database
 * configured, which starts an embedded PostgreSQL under DATA_DIR and applies migrations; in
 * production (APP_ENV=production) migrations are a separate deploy step.
 *
 * It also runs the webhook delivery worker (lib/webhooks/worker.ts).
 *
 * SIGTERM or SIGINT starts a graceful shutdown: readiness turns 503 at once; after
 * SHUTDOWN_DELAY_SECONDS (default 0) the listener closes and in-flight requests get
 * SHUTDOWN_TIMEOUT_SECONDS (default 10) to finish; the webhook worker stops taking deliveries and
 * its sends get what is left of that time (at least 1 s); then the pool closes, the embedded
 * database (if this process started it) stops, and the process exits 0 — or 1 if requests were
 * cut off.
 */
import { createApp } from "./lib/http/app.ts";
import { bootstrapUsers, devAdminBanner, withJwtSecret } from "./lib/runtime/bootstrap.ts";
import { type Config, ConfigError, loadConfig } from "./lib/runtime/config.ts";
import { connect, type Db } from "./lib/db/pool.ts";
import { type OpenDatabase, openDatabaseUrl } from "./lib/runtime/dev_database.ts";
import { warnAboutLocalDefaults } from "./lib/runtime/local_defaults.ts";
import { createLogger, type Logger } from "./lib/runtime/log.ts";
import { migrate } from "./lib/db/migrate.ts";
import { Metrics } from "./lib/runtime/metrics.ts";
import { startWebhookWorker, type WebhookWorker } from "./lib/webhooks/worker.ts";
import { SPEC_PAGE_PATH } from "./routes/spec.ts";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Where the pool points, for messages: never the user name or the password. */
function describeDatabase(url: string): string {
  const u = new URL(url);
  const tls = [...u.searchParams].filter(([k]) => k === "sslmode" || k === "sslrootcert")
    .map(([k, v]) => `${k}=${v}`).join(", ");
  return `${u.hostname}:${u.port || 5432}${u.pathname}${tls ? ` (${tls})` : ""}`;
}

/** The schemes served beyond https:// and how, for the "listening" line: never a secret. */
function describeMedia(config: Config): Record<string, string> {
  const { s3, gcs, localRoot } = config.media;
  const out: Record<string, string> = {};
  if (s3) {
    out.s3 = `${s3.endpoint ?? s3.region}, ${s3.credentials ? "static keys" : "SDK chain"}`;
  }
  if (gcs) out.gs = "HMAC key";
  if (localRoot) out.file = localRoot;
  return out;
}

/** The first query, so a wrong host, password or certificate stops start-up with a clear line. */
async function checkConnection(db: Db, url: string): Promise<void> {
  try {
    await db`SELECT 1`;
  } catch (e) {
    throw new Error(
      `cannot connect to PostgreSQL at ${describeDatabase(url)}: ${(e as Error).message}`,
    );
  }
}

interface Running {
  database?: OpenDatabase;
  db?: Db;
  server?: Deno.HttpServer;
  webhooks?: WebhookWorker;
}

async function main(config: Config, log: Logger, running: Running, flags: { stopping: boolean }) {
  warnAboutLocalDefaults(config, log);
  running.database = await openDatabaseUrl(config, log, { handlesSignals: true });
  const databaseUrl = running.database.url;

  const db = running.db = connect(databaseUrl, {
    max: config.db.poolMax,
    connectTimeoutSeconds: config.db.connectTimeoutSeconds,
    statementTimeoutMs: config.db.statementTimeoutMs,
  });
  await checkConnection(db, databaseUrl);

  if (config.env === "development") {
    const result = await migrate(db, databaseUrl);
    const applied = result.stdout.match(/^Applied: .*$/gm) ?? [];
    log.info("migrations up to date", { applied: applied.length });
  }

  if (flags.stopping) return;

  const metrics = new Metrics();
  const app = createApp({ db, config, log, metrics, shuttingDown: () => flags.stopping });
  // The port is bound before the first admin is made: a start that cannot listen stops here,
  // before a dev-admin key exists, so it never shows a key that the next start (finding a user)
  // would not show again. Requests that arrive meanwhile wait for the admins to be in place.
  let admitted = false;
  let admit!: () => void;
  const bootstrapped = new Promise<void>((resolve) => admit = resolve);
  // Requests being answered: the webhook worker yields the thread to them (lib/webhooks/worker.ts).
  let serving = 0;
  const answer = async (req: Request, info: Deno.ServeHandlerInfo) => {
    serving++;
    try {
      if (!admitted) await bootstrapped;
      return await app.fetch(req, info);
    } finally {
      serving--;
    }
  };
  running.server = listen(config, answer);
  running.webhooks = startWebhookWorker({
    db,
    config,
    log,
    metrics,
    serving: () => serving > 0,
  });
  let devAdminKey: string | undefined;
  try {
    devAdminKey = await bootstrapUsers(db, config, log);
  } finally {
    admitted = true;
    admit();
  }
  const { port } = running.server.addr as Deno.NetAddr;
  const host = config.host === "0.0.0.0" ? "localhost" : config.host;
  const url = `http://${host}:${port}`;
  if (!flags.stopping) {
    log.info("listening", {
      url,
      spec: `${url}${SPEC_PAGE_PATH}`,
      database: describeDatabase(databaseUrl),
      // Which image URIs get a browser URL (docs/production.md, "Showing images").
      media: describeMedia(config),
    });
  }
  // Even while a shutdown begins: the key exists now, and this is its only copy.
  if (devAdminKey) console.log(devAdminBanner(devAdminKey, url));
}

/** The HTTP server on HOST:PORT, or an error that names them and what to do. */
function listen(
  config: Config,
  handler: (req: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response>,
): Deno.HttpServer {
  const where = `${config.host}:${config.port}`;
  try {
    return Deno.serve({ hostname: config.host, port: config.port, onListen: () => {} }, handler);
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      throw new Error(
        `cannot listen on ${where}: port ${config.port} is in use by another program ` +
          `(PORT=${config.port}): stop it, or set PORT to a free port, e.g. ` +
          `PORT=${config.port === 65535 ? 8001 : config.port + 1}`,
      );
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new Error(
        `cannot listen on ${where}: permission denied (PORT=${config.port}; ports below 1024 ` +
          `need privileges): set PORT to 1024 or above`,
      );
    }
    if (e instanceof Deno.errors.AddrNotAvailable) {
      throw new Error(
        `cannot listen on ${where}: ${config.host} is not an address of this machine ` +
          `(HOST=${config.host}): set HOST to 0.0.0.0 (every interface) or 127.0.0.1`,
      );
    }
    throw e;
  }
}

/** The graceful shutdown; a second signal while it runs changes nothing. */
async function shutdown(
  signal: string,
  config: Config,
  log: Logger,
  running: Running,
): Promise<never> {
  const { delaySeconds, timeoutSeconds } = config.shutdown;
  log.info("shutdown started", {
    signal,
    delay_seconds: delaySeconds,
    timeout_seconds: timeoutSeconds,
  });
  // Readiness is already 503; keep serving while load balancers notice.
  if (delaySeconds > 0 && running.server) await sleep(delaySeconds * 1000);

  const started = Date.now();
  let drained = true;
  if (running.server) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    drained = await Promise.race([
      running.server.shutdown().then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutSeconds * 1000);
      }),
    ]);
    clearTimeout(timer);
    if (!drained) {
      log.error("shutdown timed out: in-flight requests cut off", {
        timeout_seconds: timeoutSeconds,
      });
    }
  }
  // Sends still running when it ends are cut off; their deliveries are due again at once.
  await running.webhooks?.stop(Math.max(1000, timeoutSeconds * 1000 - (Date.now() - started)));
  await running.db?.end({ timeout: drained ? 5 : 0 });
  await running.database?.stop();
  log.info("shutdown complete", { signal, drained });
  Deno.exit(drained ? 0 : 1);
}

if (import.meta.main) {
  const config = await withJwtSecret(loadConfig()).catch((e) => {
    // A bad DATA_DIR/jwt-secret: the same readable message and exit as a bad variable.
    if (!(e instanceof ConfigError)) throw e;
    console.error(e.message);
    Deno.exit(1);
  });
  const log = createLogger(config.logLevel);
  const running: Running = {};
  const flags = { stopping: false };
  const onSignal = (signal: Deno.Signal) => () => {
    if (flags.stopping) {
      log.info("shutdown already in progress", { signal });
      return;
    }
    flags.stopping = true;
    void shutdown(signal, config, log, running);
  };
  Deno.addSignalListener("SIGINT", onSignal("SIGINT"));
  Deno.addSignalListener("SIGTERM", onSignal("SIGTERM"));
  try {
    await main(config, log, running, flags);
  } catch (e) {
    // A signal during start-up: the shutdown under way exits.
    if (flags.stopping) await new Promise(() => {});
    log.error("start-up failed", { error: (e as Error).message });
    await running.db?.end({ timeout: 0 }).catch(() => {});
    await running.database?.stop().catch(() => {});
    Deno.exit(1);
  }
}
