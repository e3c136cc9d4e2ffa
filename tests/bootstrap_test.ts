/** Start-up steps around authentication: ADMIN_API_KEY's admin, and the kept JWT secret. */
import assert from "node:assert/strict";
import { bootstrapUsers, withJwtSecret } from "../lib/runtime/bootstrap.ts";
import { type Config, ConfigError } from "../lib/runtime/config.ts";
import { createLogger } from "../lib/runtime/log.ts";
import { type TestApp, testConfig, withApp } from "./harness.ts";
import { expectStartFailure, ROOT_DIR } from "../testkit/process.ts";

const KEY = "ak_bootstrap_test_admin_key_0123456789abcdef";

// ADMIN_API_KEY: the admin follows ADMIN_NAME, the key with it.

interface Bootstrap {
  h: TestApp;
  /** What bootstrapUsers logged. */
  lines: string[];
  /** Start-up's bootstrap with ADMIN_NAME `name` and ADMIN_API_KEY `key`. */
  bootstrap(name: string, key?: string): Promise<unknown>;
  /** GET /me as whoever holds KEY. */
  // deno-lint-ignore no-explicit-any
  holder(): Promise<any>;
  /** The user of that name: id, role, whether it has a key, disabled_at. */
  // deno-lint-ignore no-explicit-any
  row(name: string): Promise<any>;
}

/** A test on a fresh app whose bootstrap logs into `lines`. */
function withBootstrap(name: string, fn: (b: Bootstrap) => Promise<void>): void {
  withApp(name, async (h) => {
    const lines: string[] = [];
    const log = createLogger("info", (line) => lines.push(line));
    const bootstrap = (name: string, key = KEY) =>
      bootstrapUsers(h.db, testConfig({ ADMIN_API_KEY: key, ADMIN_NAME: name }), log);
    const holder = async () => {
      const res = await h.anon("POST", "/api/v1/auth/token", { api_key: KEY });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return (await h.client(res.body.access_token)("GET", "/api/v1/me")).body;
    };
    const row = async (name: string) =>
      (await h.db`SELECT id::text, role, api_key_hash IS NOT NULL AS has_key, disabled_at
      FROM users WHERE name = ${name}`)[0];
    await fn({ h, lines, bootstrap, holder, row });
  });
}

withBootstrap(
  "ADMIN_API_KEY: first start: the admin is created",
  async ({ bootstrap, holder, row }) => {
    await bootstrap("root");
    assert.deepEqual(await holder(), { id: (await row("root")).id, name: "root", role: "admin" });
  },
);

withBootstrap(
  "ADMIN_API_KEY: again with the same values: nothing changes",
  async ({ h, bootstrap, row }) => {
    await bootstrap("root");
    const before = await row("root");
    await bootstrap("root");
    assert.deepEqual(await row("root"), before);
    assert.equal((await h.db`SELECT count(*)::int AS n FROM users WHERE name = 'root'`)[0].n, 1);
  },
);

withBootstrap(
  "ADMIN_API_KEY: ADMIN_NAME changed, same key: the key moves to the new name",
  async ({ lines, bootstrap, holder, row }) => {
    await bootstrap("root");
    lines.length = 0;
    await bootstrap("ops-admin");
    const me = await holder();
    assert.equal(me.name, "ops-admin");
    assert.equal(me.role, "admin");
    const old = await row("root");
    assert.equal(old.has_key, false, "the previous holder lost the key");
    assert.equal(old.role, "admin", "and is otherwise unchanged");
    assert.ok(
      lines.some((l) => l.includes("moved") && l.includes('"root"')),
      `a warning names the previous holder: ${lines.join("\n")}`,
    );
    // Idempotent from here too.
    await bootstrap("ops-admin");
    assert.equal((await holder()).id, me.id);
  },
);

withBootstrap(
  "ADMIN_API_KEY: ADMIN_NAME changed back: the existing user gets the key again, re-enabled",
  async ({ h, bootstrap, holder, row }) => {
    await bootstrap("root");
    await bootstrap("ops-admin");
    const root = await row("root");
    await h.db`UPDATE users SET disabled_at = now() WHERE name = 'root'`;
    await bootstrap("root");
    assert.equal((await holder()).id, root.id);
    assert.equal((await row("root")).disabled_at, null);
    assert.equal((await row("ops-admin")).has_key, false);
  },
);

withBootstrap(
  "ADMIN_API_KEY: a key held by a non-admin user is taken too",
  async ({ h, bootstrap, row }) => {
    await bootstrap("root");
    const other = await h.user("annotator");
    await bootstrap("root", other.apiKey);
    const res = await h.anon("POST", "/api/v1/auth/token", { api_key: other.apiKey });
    const me = await h.client(res.body.access_token)("GET", "/api/v1/me");
    assert.equal(me.body.name, "root");
    assert.equal((await row(other.name)).role, "annotator");
    assert.equal((await row(other.name)).has_key, false);
  },
);

// The kept JWT secret (DATA_DIR/jwt-secret).

/** A test with its own DATA_DIR (removed after) and a configuration without AUTH_JWT_SECRET. */
function withDataDir(
  name: string,
  fn: (t: { dir: string; path: string; config: Config }) => Promise<void>,
): void {
  Deno.test(name, async () => {
    const dir = await Deno.makeTempDir({ prefix: "annotation-secret-" });
    try {
      const config = testConfig({ AUTH_JWT_SECRET: "", DATA_DIR: dir });
      assert.equal(config.auth.jwtSecret, undefined);
      await fn({ dir, path: `${dir}/jwt-secret`, config });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

withDataDir(
  "JWT secret: generated once, at least 32 bytes, readable by the owner only",
  async ({ path, config }) => {
    const first = await withJwtSecret(config);
    assert.ok(new TextEncoder().encode(first.auth.jwtSecret!).length >= 32);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const second = await withJwtSecret(config);
    assert.equal(second.auth.jwtSecret, first.auth.jwtSecret, "kept across restarts");
  },
);

withDataDir(
  "JWT secret: an empty or short file stops start-up with a message naming it",
  async ({ path, config }) => {
    for (const [content, what] of [["", /empty/], ["\n", /empty/], ["short\n", /only 5 bytes/]]) {
      await Deno.writeTextFile(path, content as string);
      await assert.rejects(
        () => withJwtSecret(config),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError);
          assert.ok(e.message.includes(path), e.message);
          assert.match(e.message, what as RegExp);
          assert.match(e.message, /at least 32/);
          return true;
        },
      );
      assert.equal(await Deno.readTextFile(path), content, "the file is left alone");
    }
  },
);

withDataDir(
  "JWT secret: 31 bytes is too short, 32 is enough (bytes, not characters)",
  async ({ path, config }) => {
    await Deno.writeTextFile(path, "x".repeat(31));
    await assert.rejects(() => withJwtSecret(config), ConfigError);
    await Deno.writeTextFile(path, "é".repeat(16)); // 16 characters, 32 bytes
    assert.equal((await withJwtSecret(config)).auth.jwtSecret, "é".repeat(16));
  },
);

withDataDir(
  "JWT secret: AUTH_JWT_SECRET wins and the file is not read",
  async ({ dir, path }) => {
    await Deno.writeTextFile(path, "");
    const set = testConfig({ DATA_DIR: dir });
    assert.equal((await withJwtSecret(set)).auth.jwtSecret, set.auth.jwtSecret);
  },
);

withDataDir(
  "JWT secret: the server exits 1 with that message, no stack trace",
  async ({ dir, path }) => {
    await Deno.writeTextFile(path, "too-short");
    const { code, output } = await expectStartFailure({ APP_ENV: "test", DATA_DIR: dir });
    assert.equal(code, 1, output);
    assert.ok(output.includes(`${path}: the JWT secret kept there is only 9 bytes`), output);
    assert.doesNotMatch(output, /Uncaught|at async|\.ts:\d+/);
  },
);

// Processes started together without AUTH_JWT_SECRET all sign with one secret.

withDataDir(
  "JWT secret: calls at once in one process, twenty rounds, give one secret",
  async ({ dir }) => {
    for (let round = 0; round < 20; round++) {
      const config = testConfig({ AUTH_JWT_SECRET: "", DATA_DIR: `${dir}/round-${round}` });
      const secrets = await Promise.all(
        Array.from({ length: 8 }, () => withJwtSecret(config).then((c) => c.auth.jwtSecret)),
      );
      assert.equal(new Set(secrets).size, 1, `round ${round}: ${secrets.join(", ")}`);
      const kept = await Deno.readTextFile(`${dir}/round-${round}/jwt-secret`);
      assert.equal(kept, `${secrets[0]}\n`);
      const files = (await Array.fromAsync(Deno.readDir(`${dir}/round-${round}`)))
        .map((e) => e.name);
      assert.deepEqual(files, ["jwt-secret"], "no partial files left");
    }
  },
);

withDataDir("JWT secret: four processes started at once sign with one secret", async ({ dir }) => {
  const dataDir = `${dir}/processes`;
  const script = `
    import { withJwtSecret } from "${ROOT_DIR}/lib/runtime/bootstrap.ts";
    import { parseConfig } from "${ROOT_DIR}/lib/runtime/config.ts";
    const config = parseConfig({ APP_ENV: "development", DATA_DIR: ${JSON.stringify(dataDir)} });
    console.log((await withJwtSecret(config)).auth.jwtSecret);
  `;
  const outputs = await Promise.all(
    [1, 2, 3, 4].map(() =>
      new Deno.Command(Deno.execPath(), {
        args: ["eval", `--config=${ROOT_DIR}/deno.json`, script],
        stdout: "piped",
        stderr: "piped",
      }).output()
    ),
  );
  const secrets = outputs.map((o) => {
    assert.ok(o.success, new TextDecoder().decode(o.stderr));
    return new TextDecoder().decode(o.stdout).trim();
  });
  assert.equal(new Set(secrets).size, 1, secrets.join(", "));
  assert.equal(await Deno.readTextFile(`${dataDir}/jwt-secret`), `${secrets[0]}\n`);
});
