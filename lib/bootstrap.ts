/** Start-up steps around authentication: the JWT secret and the first admin. */
import { hashApiKey, newApiKey, newJwtSecret } from "./auth.ts";
import type { Config } from "./config.ts";
import { type Db, isPgError } from "./db.ts";
import type { Logger } from "./log.ts";
import * as users from "../sql/users/queries.ts";

/**
 * The configured secret, or in development one generated once and kept in DATA_DIR/jwt-secret,
 * so tokens survive restarts. (Config refuses to start production without AUTH_JWT_SECRET.)
 */
export async function withJwtSecret(config: Config): Promise<Config> {
  if (config.auth.jwtSecret) return config;
  if (config.env === "production") throw new Error("AUTH_JWT_SECRET is required in production");
  const path = `${config.dataDir}/jwt-secret`;
  let secret: string;
  try {
    secret = (await Deno.readTextFile(path)).trim();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    secret = newJwtSecret();
    await Deno.mkdir(config.dataDir, { recursive: true });
    await Deno.writeTextFile(path, secret + "\n", { mode: 0o600 });
  }
  return { ...config, auth: { ...config.auth, jwtSecret: secret } };
}

/**
 * ADMIN_API_KEY makes sure an admin with that key exists (idempotent). In development, an empty
 * database gets an admin whose key is printed once.
 */
export async function bootstrapUsers(db: Db, config: Config, log: Logger): Promise<void> {
  if (config.auth.adminApiKey) {
    const hash = await hashApiKey(config.auth.adminApiKey);
    let admin: users.User;
    for (let attempt = 1;; attempt++) {
      try {
        admin = await users.ensureAdmin(db, config.auth.adminName, hash);
        break;
      } catch (e) {
        // Replicas starting together insert the same admin at once: ON CONFLICT (name) settles
        // the name, but the loser can trip over the key's own unique index first (23505). The
        // winner has committed by then, so the next attempt takes the ON CONFLICT path.
        if (!(isPgError(e) && e.code === "23505") || attempt >= 3) throw e;
      }
    }
    log.info("admin from ADMIN_API_KEY ensured", { user_id: admin.id, name: admin.name });
    return;
  }
  if (config.env === "development" && !(await users.anyUserExists(db))) {
    const apiKey = newApiKey();
    const admin = await users.createUser(db, {
      name: "dev-admin",
      role: "admin",
      apiKeyHash: await hashApiKey(apiKey),
    });
    if (admin) {
      // Printed once, on purpose, outside the structured log: it is the only copy of the key.
      console.log(
        `\nCreated development admin "dev-admin". Its API key (shown once):\n\n  ${apiKey}\n\n` +
          `Get a token: curl -s -X POST localhost:${config.port}/api/v1/auth/token ` +
          `-H 'content-type: application/json' -d '{"api_key":"${apiKey}"}'\n`,
      );
    }
  }
}
