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

/** The keys of the `minio` profile's store, which the app signs s3:// URLs with by default. */
export const LOCAL_COMPOSE_MINIO = {
  AWS_ACCESS_KEY_ID: "local-compose-minio",
  AWS_SECRET_ACCESS_KEY: "local-compose-minio-secret",
} as const;

type LocalDefault = keyof typeof LOCAL_COMPOSE_DEFAULTS | "AWS_SECRET_ACCESS_KEY";

/** The variables whose value is one of the public compose defaults. */
export function localDefaultsInUse(config: Config): LocalDefault[] {
  const found: LocalDefault[] = [];
  if (config.auth.jwtSecret === LOCAL_COMPOSE_DEFAULTS.AUTH_JWT_SECRET) {
    found.push("AUTH_JWT_SECRET");
  }
  if (config.auth.adminApiKey === LOCAL_COMPOSE_DEFAULTS.ADMIN_API_KEY) {
    found.push("ADMIN_API_KEY");
  }
  const s3Keys = config.media.s3?.credentials;
  if (s3Keys?.secretAccessKey === LOCAL_COMPOSE_MINIO.AWS_SECRET_ACCESS_KEY) {
    found.push("AWS_SECRET_ACCESS_KEY");
  }
  return found;
}

/** Logs a start-up warning when the public compose defaults are in use. */
export function warnAboutLocalDefaults(config: Config, log: Logger): void {
  const variables = localDefaultsInUse(config);
  if (!variables.length) return;
  log.warn(
    "running with the public local-only defaults of docker-compose.yml: anyone can sign " +
      "tokens, log in as admin or read the local MinIO; set your own before exposing this server",
    { variables },
  );
}
