/**
 * `<NAME>_FILE` for the secret variables (lib/runtime/config.ts FILE_VARIABLES): the value read
 * from a file, as Docker and Kubernetes secrets are mounted.
 */
import assert from "node:assert/strict";
import { ConfigError, FILE_VARIABLES, parseConfig } from "../lib/runtime/config.ts";
import { createTestDb } from "./harness.ts";
import {
  dbEnv,
  expectStartFailure,
  SERVER_ADMIN_KEY,
  SERVER_JWT_SECRET,
  startServer,
} from "../testkit/process.ts";

const PRODUCTION = { APP_ENV: "production", DATABASE_URL: "postgres://u@db.internal/app" };

/** The problems parseConfig reports for `vars`. */
function problems(vars: Record<string, string>): string[] {
  try {
    parseConfig(vars);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  assert.fail("the configuration was accepted");
}

// Secrets from files: every FILE_VARIABLES entry, the same as the variable.

/** A test with a directory of its own (removed after); `file` writes one in it, its path. */
function withSecretsDir(
  name: string,
  fn: (
    t: { dir: string; file(name: string, content: string): Promise<string> },
  ) => Promise<void> | void,
): void {
  Deno.test(name, async () => {
    const dir = await Deno.makeTempDir({ prefix: "annotation-secrets-" });
    try {
      await fn({
        dir,
        file: async (name, content) => {
          await Deno.writeTextFile(`${dir}/${name}`, content);
          return `${dir}/${name}`;
        },
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

withSecretsDir(
  "secrets from files: the content is the value, less its trailing line breaks",
  async ({ file }) => {
    const config = parseConfig({
      APP_ENV: "production",
      DATABASE_URL_FILE: await file("url", "postgres://app:pw@db.internal:5432/annotations\n"),
      AUTH_JWT_SECRET_FILE: await file("jwt", `${"j".repeat(40)}\r\n`),
      AUTH_JWT_SECRET_ACCEPTED_FILE: await file("jwt-old", `${"o".repeat(40)}\n\n`),
      ADMIN_API_KEY_FILE: await file("admin", `${"a".repeat(40)}`),
      METRICS_TOKEN_FILE: await file("metrics", " token with spaces inside \n"),
    });
    assert.equal(config.auth.jwtSecret, "j".repeat(40));
    assert.equal(config.auth.jwtAcceptedSecret, "o".repeat(40));
    assert.equal(config.auth.adminApiKey, "a".repeat(40));
    assert.equal(config.metricsToken, " token with spaces inside ");
    assert.equal(
      config.databaseUrl,
      "postgres://app:pw@db.internal:5432/annotations?sslmode=disable",
    );
  },
);

withSecretsDir(
  "secrets from files: DB_PASSWORD_FILE, with the DB_* parts",
  async ({ file }) => {
    const config = parseConfig({
      ...PRODUCTION,
      DATABASE_URL: "",
      AUTH_JWT_SECRET: "s".repeat(32),
      DB_USER: "app",
      DB_HOST: "db.internal",
      DB_NAME: "annotations",
      DB_PASSWORD_FILE: await file("db-password", "p@ss:w/rd\n"),
    });
    assert.equal(new URL(config.databaseUrl!).password, encodeURIComponent("p@ss:w/rd"));
  },
);

Deno.test(
  "secrets from files: every secret variable has its _FILE, and only those",
  () => {
    assert.deepEqual([...FILE_VARIABLES].sort(), [
      "ADMIN_API_KEY",
      "AUTH_JWT_SECRET",
      "AUTH_JWT_SECRET_ACCEPTED",
      "AWS_SECRET_ACCESS_KEY",
      "DATABASE_URL",
      "DB_PASSWORD",
      "GCS_HMAC_SECRET",
      "METRICS_TOKEN",
    ]);
  },
);

withSecretsDir(
  "secrets from files: both set: a problem, whichever way they agree",
  async ({ file }) => {
    const path = await file("same", "s".repeat(32));
    for (const name of FILE_VARIABLES) {
      const found = problems({ ...PRODUCTION, [name]: "s".repeat(32), [`${name}_FILE`]: path });
      assert.ok(found.includes(`${name}, ${name}_FILE: both are set; set one`), found.join());
    }
  },
);

withSecretsDir(
  "secrets from files: a file that cannot be read: the variable, the path and why",
  ({ dir }) => {
    const missing = `${dir}/missing`;
    assert.deepEqual(
      problems({ ...PRODUCTION, AUTH_JWT_SECRET_FILE: missing }),
      [`AUTH_JWT_SECRET_FILE: cannot read ${missing}: no such file`],
    );
    assert.deepEqual(
      problems({ ...PRODUCTION, AUTH_JWT_SECRET_FILE: dir }),
      [`AUTH_JWT_SECRET_FILE: cannot read ${dir}: is a directory`],
    );
  },
);

withSecretsDir("secrets from files: an empty file is no secret", async ({ file }) => {
  const empty = await file("empty", "\n");
  assert.deepEqual(
    problems({ ...PRODUCTION, AUTH_JWT_SECRET_FILE: empty }),
    [`AUTH_JWT_SECRET_FILE: ${empty} is empty`],
  );
});

withSecretsDir(
  "secrets from files: a value the variable refuses: the file named in the message",
  async ({ file }) => {
    const short = await file("short", "too short\n");
    assert.deepEqual(
      problems({ ...PRODUCTION, AUTH_JWT_SECRET_FILE: short }),
      [`AUTH_JWT_SECRET (read from AUTH_JWT_SECRET_FILE=${short}): must be at least 32 bytes`],
    );
  },
);

// The production server takes its secrets from files.

/** A test with a database of its own and the server's environment taking secrets from files. */
function withSecretEnv(
  name: string,
  fn: (t: { dir: string; env: Record<string, string> }) => Promise<void>,
): void {
  Deno.test(name, async () => {
    const dir = await Deno.makeTempDir({ prefix: "annotation-secrets-" });
    const tdb = await createTestDb(2);
    try {
      const { DB_PASSWORD, ...db } = dbEnv(tdb.url);
      const secrets = {
        DB_PASSWORD_FILE: `${dir}/db-password`,
        AUTH_JWT_SECRET_FILE: `${dir}/jwt-secret`,
        ADMIN_API_KEY_FILE: `${dir}/admin-key`,
      };
      await Deno.writeTextFile(secrets.DB_PASSWORD_FILE, `${DB_PASSWORD}\n`);
      await Deno.writeTextFile(secrets.AUTH_JWT_SECRET_FILE, `${SERVER_JWT_SECRET}\n`);
      await Deno.writeTextFile(secrets.ADMIN_API_KEY_FILE, `${SERVER_ADMIN_KEY}\n`);
      const env = { APP_ENV: "production", LOG_LEVEL: "info", ...db, ...secrets };
      await fn({ dir, env });
    } finally {
      await tdb.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

withSecretEnv(
  "production server: starts, and the admin key from its file gets a token",
  async ({ env }) => {
    const server = await startServer(env);
    try {
      const res = await fetch(`${server.url}/api/v1/auth/token`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ api_key: SERVER_ADMIN_KEY }),
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
      assert.ok(!server.output().includes(SERVER_JWT_SECRET), "the secret is not logged");
    } finally {
      server.kill("SIGTERM");
      await server.exited;
    }
  },
);

withSecretEnv(
  "production server: an unreadable file stops start-up with one clear line",
  async ({ dir, env }) => {
    const { code, output } = await expectStartFailure({
      ...env,
      AUTH_JWT_SECRET_FILE: `${dir}/nope`,
    });
    assert.equal(code, 1, output);
    assert.ok(
      output.includes(`AUTH_JWT_SECRET_FILE: cannot read ${dir}/nope: no such file`),
      output,
    );
    assert.doesNotMatch(output, /Uncaught|at async|\.ts:\d+/);
  },
);
