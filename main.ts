/**
 * The server: configuration, database, HTTP. `deno task dev` runs this with no database
 * configured, which starts an embedded PostgreSQL under DATA_DIR and applies migrations; in
 * production (APP_ENV=production) migrations are a separate deploy step.
 */
import { createApp } from "./lib/app.ts";
import { bootstrapUsers, withJwtSecret } from "./lib/bootstrap.ts";
import { type Config, loadConfig } from "./lib/config.ts";
import { connect } from "./lib/db.ts";
import { openDatabaseUrl } from "./lib/dev_database.ts";
import { createLogger } from "./lib/log.ts";
import { migrate } from "./lib/migrate.ts";
import { SPEC_PAGE_PATH } from "./routes/spec.ts";

async function main(config: Config) {
  const log = createLogger(config.logLevel);
  const database = await openDatabaseUrl(config, log);
  const databaseUrl = database.url;

  const db = connect(databaseUrl, {
    max: config.db.poolMax,
    connectTimeoutSeconds: config.db.connectTimeoutSeconds,
    statementTimeoutMs: config.db.statementTimeoutMs,
  });

  if (config.env === "development") {
    const result = await migrate(db, databaseUrl);
    const applied = result.stdout.match(/^Applied: .*$/gm) ?? [];
    log.info("migrations up to date", { applied: applied.length });
  }

  await bootstrapUsers(db, config, log);

  let shuttingDown = false;
  const app = createApp({ db, config, log, shuttingDown: () => shuttingDown });
  const server = Deno.serve({
    hostname: config.host,
    port: config.port,
    onListen: ({ port }) => {
      const host = config.host === "0.0.0.0" ? "localhost" : config.host;
      log.info("listening", {
        url: `http://${host}:${port}`,
        spec: `http://${host}:${port}${SPEC_PAGE_PATH}`,
      });
    },
  }, app.fetch);

  const stop = async (signal: string) => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info("shutting down", { signal });
    await server.shutdown();
    await db.end({ timeout: 5 });
    await database.stop();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
}

if (import.meta.main) {
  await main(await withJwtSecret(loadConfig()));
}
