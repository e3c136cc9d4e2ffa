/**
 * Production configuration: the database settings (DATABASE_URL or DB_*, TLS, shutdown) as
 * parsed, and the real server process started the production way with the `DB_*` variables.
 */
import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../lib/runtime/config.ts";
import { tlsFromUrl } from "../lib/db/pool.ts";
import { LOCAL_COMPOSE_DEFAULTS } from "../lib/runtime/local_defaults.ts";
import { createTestDb } from "./harness.ts";
import { adminToken } from "../testkit/api.ts";
import { createLoginRole } from "../testkit/postgres.ts";
import {
  dbEnv,
  exitWithin,
  productionEnv,
  SERVER_ADMIN_KEY,
  SERVER_JWT_SECRET,
  startServer,
} from "../testkit/process.ts";

const SECRET = "x".repeat(32);

function problems(vars: Record<string, string>): string[] {
  try {
    parseConfig({ APP_ENV: "production", AUTH_JWT_SECRET: SECRET, ...vars });
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

function assertProblem(vars: Record<string, string>, pattern: RegExp): void {
  const found = problems(vars);
  assert.ok(found.some((p) => pattern.test(p)), `${pattern} not in ${JSON.stringify(found)}`);
}

// Database and shutdown settings.

/**
 * A test with a temporary directory (removed after) holding `ca.pem`, a CA bundle in PEM form,
 * and `not.pem`, a file that is not.
 */
function withCerts(
  name: string,
  fn: (t: { dir: string; ca: string; notPem: string }) => void,
): void {
  Deno.test(name, async () => {
    const dir = await Deno.makeTempDir();
    try {
      const ca = `${dir}/ca.pem`;
      await Deno.writeTextFile(
        ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
      );
      const notPem = `${dir}/not.pem`;
      await Deno.writeTextFile(notPem, "hello\n");
      fn({ dir, ca, notPem });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("settings: defaults: no TLS, 10 s to drain, no delay", () => {
  const c = parseConfig({
    APP_ENV: "production",
    AUTH_JWT_SECRET: SECRET,
    DB_HOST: "db",
    DB_USER: "u",
    DB_NAME: "n",
  });
  assert.equal(c.db.sslMode, "disable");
  assert.equal(c.db.sslRootCert, undefined);
  assert.equal(c.databaseUrl, "postgres://u@db:5432/n?sslmode=disable");
  assert.deepEqual(c.shutdown, { delaySeconds: 0, timeoutSeconds: 10 });
  assert.equal(c.db.poolMax, 10);
  assert.equal(c.db.connectTimeoutSeconds, 5);
  assert.equal(c.db.statementTimeoutMs, 30_000);
});

Deno.test("settings: DB_* values are URL-encoded, so any password works", () => {
  const c = parseConfig({
    APP_ENV: "production",
    AUTH_JWT_SECRET: SECRET,
    DB_HOST: "mydb.abc123.eu-west-1.rds.amazonaws.com",
    DB_PORT: "6543",
    DB_USER: "app user",
    DB_PASSWORD: "p@ss:w/rd?#%&=",
    DB_NAME: "annotations",
    DB_SSLMODE: "require",
  });
  const u = new URL(c.databaseUrl!);
  assert.equal(decodeURIComponent(u.password), "p@ss:w/rd?#%&=");
  assert.equal(decodeURIComponent(u.username), "app user");
  assert.equal(u.hostname, "mydb.abc123.eu-west-1.rds.amazonaws.com");
  assert.equal(u.port, "6543");
  assert.equal(u.searchParams.get("sslmode"), "require");
});

withCerts(
  "settings: verify-full needs a readable CA bundle, checked at start-up",
  ({ dir, ca, notPem }) => {
    const db = { DATABASE_URL: "postgres://u:p@db.example.com/app" };
    assertProblem({ ...db, DB_SSLMODE: "verify-full" }, /^DB_SSLROOTCERT: required with/);
    assertProblem(
      { ...db, DB_SSLMODE: "verify-full", DB_SSLROOTCERT: `${dir}/missing.pem` },
      /^DB_SSLROOTCERT: cannot read .*missing\.pem: no such file/,
    );
    assertProblem(
      { ...db, DB_SSLMODE: "verify-full", DB_SSLROOTCERT: dir },
      /^DB_SSLROOTCERT: cannot read/,
    );
    assertProblem(
      { ...db, DB_SSLMODE: "verify-full", DB_SSLROOTCERT: notPem },
      /^DB_SSLROOTCERT: .*holds no PEM certificate/,
    );
    const c = parseConfig({
      APP_ENV: "production",
      AUTH_JWT_SECRET: SECRET,
      ...db,
      DB_SSLMODE: "verify-full",
      DB_SSLROOTCERT: ca,
    });
    assert.equal(c.db.sslMode, "verify-full");
    assert.equal(c.db.sslRootCert, ca);
    const u = new URL(c.databaseUrl!);
    assert.equal(u.searchParams.get("sslmode"), "verify-full");
    assert.equal(u.searchParams.get("sslrootcert"), ca);
  },
);

withCerts("settings: DB_SSLROOTCERT alone, or with require, is refused", ({ ca }) => {
  const db = { DATABASE_URL: "postgres://u:p@db/app" };
  assertProblem({ ...db, DB_SSLROOTCERT: ca }, /^DB_SSLROOTCERT: only used with .*disable/);
  assertProblem(
    { ...db, DB_SSLMODE: "require", DB_SSLROOTCERT: ca },
    /^DB_SSLROOTCERT: only used with .*require/,
  );
});

withCerts(
  "settings: an sslmode in DATABASE_URL is honoured, and must not contradict",
  ({ ca }) => {
    const c = parseConfig({
      APP_ENV: "production",
      AUTH_JWT_SECRET: SECRET,
      DATABASE_URL: "postgresql://u:p@db/app?sslmode=require&application_name=x",
    });
    assert.equal(c.db.sslMode, "require");
    assert.equal(new URL(c.databaseUrl!).searchParams.get("application_name"), "x");
    // The same value twice is fine.
    assert.deepEqual(
      problems({ DATABASE_URL: "postgres://u@db/app?sslmode=require", DB_SSLMODE: "require" }),
      [],
    );
    assertProblem(
      { DATABASE_URL: "postgres://u@db/app?sslmode=require", DB_SSLMODE: "disable" },
      /^DB_SSLMODE: disable disagrees with sslmode=require in DATABASE_URL/,
    );
    assertProblem(
      { DATABASE_URL: "postgres://u@db/app?sslmode=prefer" },
      /^DATABASE_URL: sslmode=prefer is not supported; use disable, require, verify-full/,
    );
    const v = parseConfig({
      APP_ENV: "production",
      AUTH_JWT_SECRET: SECRET,
      DATABASE_URL: `postgres://u@db/app?sslmode=verify-full&sslrootcert=${ca}`,
    });
    assert.equal(v.db.sslRootCert, ca);
  },
);

Deno.test(
  "settings: DB_SSLMODE values are checked; TLS needs a configured database",
  () => {
    assertProblem({ DATABASE_URL: "postgres://u@db/app", DB_SSLMODE: "prefer" }, /^DB_SSLMODE:/);
    const dev = (vars: Record<string, string>) => {
      try {
        parseConfig({ APP_ENV: "development", ...vars });
        return [];
      } catch (e) {
        return (e as ConfigError).problems;
      }
    };
    assert.deepEqual(dev({ DB_SSLMODE: "disable" }), []);
    assert.match(dev({ DB_SSLMODE: "require" }).join("\n"), /embedded development database/);
  },
);

Deno.test("settings: the shutdown settings are bounded", () => {
  assertProblem(
    { DATABASE_URL: "postgres://u@db/app", SHUTDOWN_TIMEOUT_SECONDS: "-1" },
    /^SHUTDOWN_TIMEOUT_SECONDS:/,
  );
  const c = parseConfig({
    APP_ENV: "production",
    AUTH_JWT_SECRET: SECRET,
    DATABASE_URL: "postgres://u@db/app",
    SHUTDOWN_TIMEOUT_SECONDS: "25",
    SHUTDOWN_DELAY_SECONDS: "5",
  });
  assert.deepEqual(c.shutdown, { delaySeconds: 5, timeoutSeconds: 25 });
});

withCerts(
  "settings: connect() turns the URL's TLS parameters into postgres.js options",
  ({ ca }) => {
    assert.deepEqual(tlsFromUrl("postgres://u@db:5432/app?sslmode=disable"), {
      url: "postgres://u@db:5432/app",
      ssl: false,
    });
    assert.deepEqual(tlsFromUrl("postgres://u@db/app?sslmode=require&x=1"), {
      url: "postgres://u@db/app?x=1",
      ssl: "require",
    });
    const full = tlsFromUrl(`postgres://u@[::1]:5432/app?sslmode=verify-full&sslrootcert=${ca}`);
    assert.equal(full.url, "postgres://u@[::1]:5432/app");
    assert.deepEqual(full.ssl, {
      ca: ["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"],
      rejectUnauthorized: true,
      host: "::1",
    });
    assert.throws(() => tlsFromUrl("postgres://u@db/app?sslmode=allow"), /not supported/);
  },
);

Deno.test("the database scripts need no token secret in production", () => {
  const vars = { APP_ENV: "production", DATABASE_URL: "postgres://u:p@db.internal/annotations" };
  assert.throws(() => parseConfig(vars), (e) => {
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /AUTH_JWT_SECRET: required in production/);
    return true;
  });
  const config = parseConfig(vars, { tokens: false });
  assert.equal(config.auth.jwtSecret, undefined);
  assert.equal(config.env, "production");
});

Deno.test("the production server starts from DB_* variables (no DATABASE_URL), TLS off", async () => {
  const tdb = await createTestDb(2);
  const role = await createLoginRole(tdb.url, Deno.env.get("TEST_DATABASE_URL")!);
  try {
    const env = {
      ...productionEnv(),
      ...dbEnv(tdb.url),
      DB_USER: role.user,
      DB_PASSWORD: role.password,
    };
    const server = await startServer(env);
    try {
      const ready = await fetch(`${server.url}/readyz`);
      assert.equal(ready.status, 200, await ready.text());

      const token = await adminToken(server);
      const me = await fetch(`${server.url}/api/v1/me`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const body = await me.json();
      assert.equal(me.status, 200, JSON.stringify(body));
      assert.equal(body.role, "admin");

      const created = await fetch(`${server.url}/api/v1/datasets`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "from-a-real-process", labels: ["cat"] }),
      });
      assert.equal(created.status, 201, await created.text());

      // Stop with SIGINT this time (the shutdown test uses SIGTERM).
      server.kill("SIGINT");
      assert.equal(await exitWithin(server, 15_000), 0, server.output());

      const logs = server.logs();
      const listening = logs.find((l) => l.msg === "listening")!;
      assert.match(String(listening.database), /:\d+\/test_\w+ \(sslmode=disable\)$/);
      assert.ok(!logs.some((l) => /local-only defaults/.test(String(l.msg))), "no false alarm");
      const requests = logs.filter((l) => l.msg === "request");
      assert.ok(requests.some((l) => l.route === "/api/v1/datasets" && l.status === 201));
      assert.ok(logs.some((l) => l.msg === "shutdown complete" && l.drained === true));
      const output = server.output();
      for (const secret of [env.DB_PASSWORD, SERVER_ADMIN_KEY, SERVER_JWT_SECRET, token]) {
        assert.ok(!output.includes(secret), `a secret reached the output: ${secret.slice(0, 6)}…`);
      }
    } finally {
      server.kill("SIGKILL");
      await server.exited.catch(() => {});
    }
  } finally {
    await tdb.close();
    await role.drop();
  }
});

Deno.test("the server warns at start-up when it runs with docker-compose.yml's public defaults", async () => {
  const tdb = await createTestDb(2);
  try {
    const server = await startServer({
      ...productionEnv(),
      ...dbEnv(tdb.url),
      ...LOCAL_COMPOSE_DEFAULTS,
    });
    try {
      const warning = server.logs().find((l) => /local-only defaults/.test(String(l.msg)));
      assert.ok(warning, server.output());
      assert.equal(warning.level, "warn");
      assert.deepEqual(warning.variables, ["AUTH_JWT_SECRET", "ADMIN_API_KEY"]);
      // It names the variables, never their values.
      assert.ok(!server.output().includes(LOCAL_COMPOSE_DEFAULTS.ADMIN_API_KEY));
    } finally {
      server.kill("SIGKILL");
      await server.exited;
    }
  } finally {
    await tdb.close();
  }
});
