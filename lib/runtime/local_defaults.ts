/**
 * The secrets docker-compose.yml falls back on when none are set, so that a plain
 * `docker compose up` gives a working stack for a local trial. They are public (they are in the
 * repository), so a server running with either logs a warning at start-up: nobody should ship
 * them unknowingly. tests/deploy_files_test.ts keeps docker-compose.yml in step with these.
 */
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";

export const LOCAL_COMPOSE_DEFAULTS = {
  AUTH_JWT_SECRET: "local-compose-only-jwt-secret-do-not-deploy",
  ADMIN_API_KEY: "local-compose-only-admin-key-do-not-deploy",
} as const;

/** The variables whose value is one of the public compose defaults. */
export function localDefaultsInUse(config: Config): (keyof typeof LOCAL_COMPOSE_DEFAULTS)[] {
  const found: (keyof typeof LOCAL_COMPOSE_DEFAULTS)[] = [];
  if (config.auth.jwtSecret === LOCAL_COMPOSE_DEFAULTS.AUTH_JWT_SECRET) {
    found.push("AUTH_JWT_SECRET");
  }
  if (config.auth.adminApiKey === LOCAL_COMPOSE_DEFAULTS.ADMIN_API_KEY) {
    found.push("ADMIN_API_KEY");
  }
  return found;
}

/** Logs a start-up warning when the public compose defaults are in use. */
export function warnAboutLocalDefaults(config: Config, log: Logger): void {
  const variables = localDefaultsInUse(config);
  if (!variables.length) return;
  log.warn(
    "running with the public local-only defaults of docker-compose.yml: anyone can sign " +
      "tokens or log in as admin; set your own before exposing this server",
    { variables },
  );
}
