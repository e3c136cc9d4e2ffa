/** Start-up steps around authentication: the JWT secret and the first admin. */
import { hashApiKey, newApiKey, newJwtSecret } from "../auth/keys.ts";
import { type Config, ConfigError } from "./config.ts";
import { type Db, isPgError } from "../db/pool.ts";
import type { Logger } from "./log.ts";
import * as users from "../../sql/users/queries.ts";

/** The least a JWT secret may have, as AUTH_JWT_SECRET requires too. */
const MIN_SECRET_BYTES = 32;

/**
 * The configured secret, or outside production one generated once and kept in
 * DATA_DIR/jwt-secret, so tokens survive restarts. (Config refuses to start production without
 * AUTH_JWT_SECRET.) A kept secret that is empty or shorter than 32 bytes (truncated, or written
 * by hand) stops start-up with a ConfigError naming the file, rather than crashing later or
 * signing tokens with a weak key.
 *
 * Processes starting together (two dev servers behind a proxy) must end up with one secret, or
 * one rejects the other's tokens: the file appears whole or not at all (written under a name of
 * its own, then hard-linked into place, which fails when the name exists), and a process that
 * finds it there reads the winner's secret instead of keeping its own.
 */
export async function withJwtSecret(config: Config): Promise<Config> {
  if (config.auth.jwtSecret) return config;
  if (config.env === "production") throw new Error("AUTH_JWT_SECRET is required in production");
  const path = `${config.dataDir}/jwt-secret`;
  const read = async () => {
    try {
      return (await Deno.readTextFile(path)).trim();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw new ConfigError([`${path}: cannot read the JWT secret: ${(e as Error).message}`]);
    }
  };
  let secret = await read();
  if (secret === undefined) {
    await Deno.mkdir(config.dataDir, { recursive: true });
    secret = await keepNewSecret(path) ?? await read();
    if (secret === undefined) {
      throw new ConfigError([`${path}: the JWT secret vanished while it was being kept`]);
    }
  }
  const bytes = new TextEncoder().encode(secret).length;
  if (bytes < MIN_SECRET_BYTES) {
    throw new ConfigError([
      `${path}: the JWT secret kept there is ${bytes ? `only ${bytes} bytes` : "empty"}; it ` +
      `must be at least ${MIN_SECRET_BYTES}. Delete the file to have a new one generated ` +
      `(tokens signed with the old one stop working), or set AUTH_JWT_SECRET`,
    ]);
  }
  return { ...config, auth: { ...config.auth, jwtSecret: secret } };
}

/** A new secret at `path`, or undefined when another process put one there first. */
async function keepNewSecret(path: string): Promise<string | undefined> {
  const secret = newJwtSecret();
  const partial = `${path}.${crypto.randomUUID()}`;
  await Deno.writeTextFile(partial, secret + "\n", { mode: 0o600, createNew: true });
  try {
    await Deno.link(partial, path);
    return secret;
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return undefined;
    // A file system without hard links: create it exclusively instead (a reader that comes
    // within the microseconds before the write finds it empty and says so).
    try {
      await Deno.writeTextFile(path, secret + "\n", { mode: 0o600, createNew: true });
      return secret;
    } catch (again) {
      if (again instanceof Deno.errors.AlreadyExists) return undefined;
      throw e;
    }
  } finally {
    await Deno.remove(partial).catch(() => {});
  }
}

/**
 * ADMIN_API_KEY makes sure an admin with that key exists (idempotent). In development, an empty
 * database gets an admin "dev-admin": its new API key is returned, for the caller to show once
 * the server listens (`devAdminBanner`); undefined otherwise.
 */
export async function bootstrapUsers(
  db: Db,
  config: Config,
  log: Logger,
): Promise<string | undefined> {
  if (config.auth.adminApiKey) {
    const hash = await hashApiKey(config.auth.adminApiKey);
    let admin: Awaited<ReturnType<typeof users.ensureAdmin>>;
    for (let attempt = 1;; attempt++) {
      try {
        admin = await users.ensureAdmin(db, { name: config.auth.adminName, api_key_hash: hash });
        break;
      } catch (e) {
        // Replicas starting together insert the same admin at once: ON CONFLICT (name) settles
        // the name, but the loser can trip over the key's own unique index first (23505). The
        // winner has committed by then, so the next attempt takes the ON CONFLICT path.
        if (!(isPgError(e) && e.code === "23505") || attempt >= 3) throw e;
      }
    }
    if (admin.key_moved_from.length) {
      // ADMIN_NAME changed while ADMIN_API_KEY stayed: the key now belongs to the new name.
      log.warn("ADMIN_API_KEY moved to ADMIN_NAME from another user", {
        name: admin.name,
        moved_from: admin.key_moved_from,
      });
    }
    log.info("admin from ADMIN_API_KEY ensured", { user_id: admin.id, name: admin.name });
    return undefined;
  }
  if (config.env === "development" && !(await users.anyUserExists(db))) {
    const apiKey = newApiKey();
    const admin = await users.createUser(db, {
      name: "dev-admin",
      role: "admin",
      api_key_hash: await hashApiKey(apiKey),
    });
    if (admin) return apiKey;
  }
  return undefined;
}

/**
 * The dev-admin's key with a curl line for the server at `url`. Printed once, on purpose outside
 * the structured log: it is the only copy of the key.
 */
export function devAdminBanner(apiKey: string, url: string): string {
  return `\nCreated development admin "dev-admin". Its API key (shown once):\n\n  ${apiKey}\n\n` +
    `Get a token: curl -s -X POST ${url}/api/v1/auth/token ` +
    `-H 'content-type: application/json' -d '{"api_key":"${apiKey}"}'\n`;
}
