/**
 * Development mode and the `deno task db:*` commands, as a developer runs them:
 *
 * - `main.ts` with APP_ENV=development and no database configured, in an empty working
 *   directory, so its `.data/` is that directory's own: it starts an embedded PostgreSQL, applies
 *   the migrations, prints the spec URL and (on the first start only) a dev-admin API key; a
 *   second start reuses `.data` (the same JWT secret, no new key).
 * - `deno task db:status | db:migrate | db:rollback` against a database of the test server, and
 *   `deno task db:new` in a copy of the project, so no file lands in db/migrations/.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { freePort } from "../lib/runtime/embedded_pg.ts";
import { createEmptyDb, createTestDb } from "./harness.ts";
import {
  baseEnv,
  type ChildProcess,
  devTaskFlags,
  ROOT_DIR,
  spawnProcess,
} from "../testkit/process.ts";

const decoder = new TextDecoder();

type Dev = ChildProcess;

/** The server as `deno task dev` runs it, in `cwd`, with only `env` (no DATABASE_URL). */
function startDev(cwd: string, env: Record<string, string>): Dev {
  return spawnProcess(env, { permissions: devTaskFlags(), cwd });
}

function logLine(dev: Dev, msg: string): Record<string, unknown> | undefined {
  for (const line of dev.lines) {
    try {
      const v = JSON.parse(line);
      if (v?.msg === msg) return v;
    } catch {
      // Not a log line (the dev-admin banner).
    }
  }
  return undefined;
}

async function waitForListening(dev: Dev, timeoutMs: number): Promise<Record<string, unknown>> {
  let exitCode: number | undefined;
  dev.exited.then((c) => exitCode = c);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const listening = logLine(dev, "listening");
    if (listening) return listening;
    if (exitCode !== undefined) {
      throw new Error(`the dev server exited with ${exitCode}:\n${dev.lines.join("\n")}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`the dev server did not listen in ${timeoutMs} ms:\n${dev.lines.join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Waits until the output matches `pattern` (or `timeoutMs` passes): the dev-admin banner is
 * written after the "listening" line, and can arrive in a later read of the pipe.
 */
async function untilPrinted(dev: Dev, pattern: RegExp, timeoutMs: number): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline;) {
    if (pattern.test(dev.lines.join("\n"))) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** SIGTERM, and the exit code (the server stops the embedded PostgreSQL it started). */
async function stop(dev: Dev): Promise<number> {
  dev.kill("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      dev.exited,
      new Promise<number>((_, reject) => {
        timer = setTimeout(() => reject(new Error("the dev server did not stop in 20 s")), 20_000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The postmaster this test's server started, if it outlived the server (a failed test). */
async function stopOrphanedPostgres(dataDir: string): Promise<void> {
  let pid: number;
  try {
    pid = Number((await Deno.readTextFile(`${dataDir}/postmaster.pid`)).split("\n")[0]);
  } catch {
    return; // Not running.
  }
  if (!Number.isInteger(pid) || pid <= 1) return;
  try {
    Deno.kill(pid, "SIGINT"); // PostgreSQL's fast shutdown.
  } catch {
    return;
  }
  for (let i = 0; i < 100; i++) {
    try {
      await Deno.stat(`${dataDir}/postmaster.pid`);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

const KEY_BANNER = /Created development admin "dev-admin"\. Its API key \(shown once\):\s+(ak_\S+)/;

/** A working directory of its own for `deno task dev`, with no database configured. */
interface DevDir {
  cwd: string;
  env: Record<string, string>;
  /** Starts the dev server there (stopped at the test's end if still running). */
  start(): Dev;
}

/**
 * One test of `deno task dev` in a fresh working directory; each start of the embedded
 * PostgreSQL takes seconds (an initdb the first time).
 */
function withDevDir(name: string, fn: (d: DevDir) => Promise<void>): void {
  Deno.test({
    name: `deno task dev with no database: ${name}`,
    // The embedded server's own processes end with the test, not necessarily before its last tick.
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const cwd = await Deno.makeTempDir({ prefix: "annotation-dev-" });
      // PostgreSQL runs as its own user when the tests run as root: it must reach .data/ in here.
      await Deno.chmod(cwd, 0o755);
      const env = {
        APP_ENV: "development",
        HOST: "127.0.0.1",
        PORT: "0",
        EMBEDDED_DB_PORT: String(freePort()),
        LOG_LEVEL: "info",
      };
      let dev: Dev | undefined;
      try {
        await fn({ cwd, env, start: () => dev = startDev(cwd, env) });
      } finally {
        if (dev) await stop(dev).catch(() => dev!.kill("SIGKILL"));
        await stopOrphanedPostgres(`${cwd}/.data/postgres`);
        await Deno.remove(cwd, { recursive: true });
      }
    },
  });
}

/**
 * The first start in a directory: it initialises the embedded PostgreSQL under ./.data, migrates,
 * prints the spec URL and a dev-admin key, and stops. Answers the key, a token and the JWT secret.
 */
async function firstStart(
  d: DevDir,
): Promise<{ apiKey: string; firstToken: string; secret: string }> {
  const started = performance.now();
  const dev = d.start();
  const listening = await waitForListening(dev, 60_000);
  await untilPrinted(dev, KEY_BANNER, 10_000);
  const output = dev.lines.join("\n");
  assert.ok(logLine(dev, "embedded PostgreSQL started"), output);
  assert.ok(logLine(dev, "migrations up to date"), output);
  const url = String(listening.url).replace("localhost", "127.0.0.1");
  assert.equal(listening.spec, `${listening.url}/api/spec.html`);
  assert.match(
    String(listening.database),
    new RegExp(`127\\.0\\.0\\.1:${d.env.EMBEDDED_DB_PORT}`),
  );

  const banner = KEY_BANNER.exec(output);
  assert.ok(banner, `the dev-admin key is printed:\n${output}`);
  const apiKey = banner[1];
  assert.equal(
    output.split(apiKey).length - 1,
    2,
    "the key, and the curl line that uses it",
  );

  const spec = await fetch(`${url}/api/spec.html`);
  assert.equal(spec.status, 200);
  await spec.body?.cancel();
  const ready = await fetch(`${url}/readyz`);
  assert.equal(ready.status, 200, "no migration pending");
  await ready.body?.cancel();
  const token = await fetch(`${url}/api/v1/auth/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ api_key: apiKey }),
  });
  assert.equal(token.status, 200);
  const firstToken: string = (await token.json()).access_token;
  const me = await fetch(`${url}/api/v1/me`, {
    headers: { authorization: `Bearer ${firstToken}` },
  });
  assert.deepEqual((await me.json()).name, "dev-admin");

  // Everything under this working directory's .data/.
  assert.ok((await Deno.stat(`${d.cwd}/.data/postgres/PG_VERSION`)).isFile);
  const secret = await Deno.readTextFile(`${d.cwd}/.data/jwt-secret`);
  assert.ok(secret.trim().length >= 32);

  assert.equal(await stop(dev), 0, dev.lines.join("\n"));
  assert.ok(performance.now() - started < 30_000, "under 30 s");
  return { apiKey, firstToken, secret };
}

withDevDir(
  "first start: embedded PostgreSQL under ./.data, initialised, migrated, the spec URL and a key",
  async (d) => {
    await firstStart(d);
  },
);

withDevDir("second start: the same data, the same secret, no new key", async (d) => {
  const { apiKey, firstToken, secret } = await firstStart(d);
  const started = performance.now();
  const dev = d.start();
  const listening = await waitForListening(dev, 30_000);
  const output = dev.lines.join("\n");
  const url = String(listening.url).replace("localhost", "127.0.0.1");
  assert.doesNotMatch(output, /Created development admin/);
  assert.doesNotMatch(output, /ak_[A-Za-z0-9_-]{43}/, "no key printed");
  assert.equal(logLine(dev, "migrations up to date")?.applied, 0, "nothing left to apply");
  assert.equal(await Deno.readTextFile(`${d.cwd}/.data/jwt-secret`), secret);

  // A token of the first run is still good (same secret), and so is the key (same data).
  const me = await fetch(`${url}/api/v1/me`, {
    headers: { authorization: `Bearer ${firstToken}` },
  });
  assert.equal(me.status, 200);
  await me.body?.cancel();
  const token = await fetch(`${url}/api/v1/auth/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ api_key: apiKey }),
  });
  assert.equal(token.status, 200);
  await token.body?.cancel();

  assert.equal(await stop(dev), 0, dev.lines.join("\n"));
  assert.ok(performance.now() - started < 30_000, "under 30 s");
});

Deno.test({
  name: "two clones at once: each its own embedded PostgreSQL, port and dev-admin",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const clones = await Promise.all(
      [0, 1].map(() => Deno.makeTempDir({ prefix: "annotation-clone-" })),
    );
    const devs: Dev[] = [];
    try {
      for (const cwd of clones) await Deno.chmod(cwd, 0o755);
      // No EMBEDDED_DB_PORT: each picks a free port for its own .data and remembers it.
      const env = { APP_ENV: "development", HOST: "127.0.0.1", PORT: "0", LOG_LEVEL: "info" };
      devs.push(...clones.map((cwd) => startDev(cwd, env)));
      const listening = await Promise.all(devs.map((dev) => waitForListening(dev, 90_000)));
      const started = devs.map((dev) => logLine(dev, "embedded PostgreSQL started"));
      assert.ok(started.every(Boolean), devs.map((d) => d.lines.join("\n")).join("\n----\n"));
      const [a, b] = started.map((line) => line!);
      assert.notEqual(a.port, b.port);
      assert.notEqual(a.data_dir, b.data_dir);
      for (const [i, cwd] of clones.entries()) {
        assert.equal(
          await Deno.readTextFile(`${cwd}/.data/postgres.port`),
          `${started[i]!.port}\n`,
        );
      }
      // Each printed a key of its own, good on its own server only.
      const keys = devs.map((dev) => KEY_BANNER.exec(dev.lines.join("\n"))?.[1]);
      assert.ok(keys.every(Boolean), "both printed a dev-admin key");
      const urls = listening.map((l) => String(l.url).replace("localhost", "127.0.0.1"));
      const token = async (url: string, key: string) => {
        const res = await fetch(`${url}/api/v1/auth/token`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ api_key: key }),
        });
        await res.body?.cancel();
        return res.status;
      };
      assert.deepEqual(
        [
          await token(urls[0], keys[0]!),
          await token(urls[1], keys[1]!),
          await token(urls[1], keys[0]!),
        ],
        [200, 200, 401],
      );
      for (const dev of devs) assert.equal(await stop(dev), 0, dev.lines.join("\n"));
    } finally {
      for (const dev of devs) await stop(dev).catch(() => dev.kill("SIGKILL"));
      for (const cwd of clones) {
        await stopOrphanedPostgres(`${cwd}/.data/postgres`);
        await Deno.remove(cwd, { recursive: true });
      }
    }
  },
});

Deno.test({
  name:
    "a busy PORT: start-up stops naming it, before any dev-admin exists; the next start shows the key",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const cwd = await Deno.makeTempDir({ prefix: "annotation-busy-port-" });
    const db = await createEmptyDb();
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (taken.addr as Deno.NetAddr).port;
    // Development on an empty database: migrated at start-up, then a dev-admin is due.
    const env = {
      APP_ENV: "development",
      DATABASE_URL: db.url,
      HOST: "127.0.0.1",
      PORT: `${port}`,
    };
    let dev: Dev | undefined;
    try {
      dev = startDev(cwd, env);
      const code = await dev.exited;
      const output = dev.lines.join("\n");
      assert.equal(code, 1, output);
      const failed = logLine(dev, "start-up failed");
      assert.equal(
        failed?.error,
        `cannot listen on 127.0.0.1:${port}: port ${port} is in use by another program ` +
          `(PORT=${port}): stop it, or set PORT to a free port, e.g. PORT=${port + 1}`,
        output,
      );
      assert.doesNotMatch(output, /Created development admin|ak_/);
      const sql = postgres(db.url, { max: 1, onnotice: () => {} });
      try {
        assert.deepEqual([...await sql`SELECT name FROM users`], [], "no admin was created");
      } finally {
        await sql.end();
      }

      taken.close();
      dev = startDev(cwd, env);
      const listening = await waitForListening(dev, 60_000);
      await untilPrinted(dev, KEY_BANNER, 10_000);
      const banner = KEY_BANNER.exec(dev.lines.join("\n"));
      assert.ok(banner, dev.lines.join("\n"));
      // The curl line names the port the server listens on.
      assert.ok(
        dev.lines.join("\n").includes(`curl -s -X POST ${listening.url}/api/v1/auth/token`),
        dev.lines.join("\n"),
      );
      const res = await fetch(`${listening.url}/api/v1/auth/token`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ api_key: banner[1] }),
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
      assert.equal(await stop(dev), 0, dev.lines.join("\n"));
    } finally {
      try {
        taken.close();
      } catch {
        // Closed above.
      }
      if (dev) await stop(dev).catch(() => dev!.kill("SIGKILL"));
      await db.close();
      await Deno.remove(cwd, { recursive: true });
    }
  },
});

/** `deno task <args>` with the project's deno.json (or `config`), `env` only, in `cwd`. */
async function task(
  args: string[],
  env: Record<string, string>,
  opts: { config?: string; cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", `--config=${opts.config ?? `${ROOT_DIR}/deno.json`}`, ...args],
    cwd: opts.cwd ?? ROOT_DIR,
    clearEnv: true,
    env: { ...baseEnv(), ...env },
    stdin: "null",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

function migrationFiles(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => /^\d+_.*\.sql$/.test(n))
    .sort();
}

// deno task db:status, db:migrate, db:rollback.

/** db:status's answer for that environment: applied and pending counts, and its output. */
async function dbStatus(env: Record<string, string>) {
  const res = await task(["db:status"], env);
  assert.equal(res.code, 0, res.stderr);
  const applied = Number(/^Applied: (\d+)$/m.exec(res.stdout)?.[1]);
  const pending = Number(/^Pending: (\d+)$/m.exec(res.stdout)?.[1]);
  return { applied, pending, stdout: res.stdout };
}

/**
 * A test on an empty database of its own, or (`migrated`) a clone of the migrated template; `env`
 * points the scripts at it (APP_ENV=test: with no database configured they would use the
 * embedded one instead).
 */
function withScriptDb(
  name: string,
  opts: { migrated: boolean },
  fn: (t: { env: Record<string, string>; files: string[] }) => Promise<void>,
): void {
  Deno.test(name, async () => {
    const db = opts.migrated ? await createTestDb(1) : await createEmptyDb();
    try {
      const env = { DATABASE_URL: db.url, APP_ENV: "test" };
      await fn({ env, files: migrationFiles(`${ROOT_DIR}/db/migrations`) });
    } finally {
      await db.close();
    }
  });
}

withScriptDb(
  "db scripts: status on an empty database: everything pending",
  { migrated: false },
  async ({ env, files }) => {
    const s = await dbStatus(env);
    assert.deepEqual([s.applied, s.pending], [0, files.length]);
    for (const f of files) assert.ok(s.stdout.includes(`[ ] ${f}`), s.stdout);
  },
);

withScriptDb(
  "db scripts: migrate applies everything; again, nothing",
  { migrated: false },
  async ({ env, files }) => {
    const res = await task(["db:migrate"], env);
    assert.equal(res.code, 0, res.stderr);
    for (const f of files) assert.ok(res.stdout.includes(f), res.stdout);
    const s = await dbStatus(env);
    assert.deepEqual([s.applied, s.pending], [files.length, 0]);
    for (const f of files) assert.ok(s.stdout.includes(`[X] ${f}`), s.stdout);
    const again = await task(["db:migrate"], env);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await dbStatus(env).then((x) => [x.applied, x.pending]), [files.length, 0]);
  },
);

withScriptDb(
  "db scripts: rollback undoes the newest migration only; migrate redoes it",
  { migrated: true },
  async ({ env, files }) => {
    const res = await task(["db:rollback"], env);
    assert.equal(res.code, 0, res.stderr);
    assert.ok(res.stdout.includes(files.at(-1)!), res.stdout);
    const s = await dbStatus(env);
    assert.deepEqual([s.applied, s.pending], [files.length - 1, 1]);
    assert.ok(s.stdout.includes(`[ ] ${files.at(-1)}`), s.stdout);
    assert.equal((await task(["db:migrate"], env)).code, 0);
    assert.deepEqual(await dbStatus(env).then((x) => [x.applied, x.pending]), [files.length, 0]);
  },
);

withScriptDb(
  "db scripts: wrong arguments: exit 2 with the usage",
  { migrated: false },
  async ({ env }) => {
    const res = await task(["db:status", "extra"], env);
    assert.equal(res.code, 2);
    assert.match(res.stderr, /db:status takes no arguments/);
    assert.match(res.stderr, /usage: deno task db:migrate/);
  },
);

Deno.test("db scripts: an unreachable database: exit 1 with a message", async () => {
  const res = await task(["db:status"], {
    DATABASE_URL: "postgres://nobody:x@127.0.0.1:1/none",
    APP_ENV: "test",
  });
  assert.equal(res.code, 1, res.stdout);
  assert.ok(res.stderr.length > 0);
});

// deno task db:new writes a timestamped migration (in a copy of the project).

interface Copy {
  /** The copy's root and its deno.json. */
  copy: string;
  config: string;
  /** Its migrations before the test's task ran. */
  before: string[];
  /** A UTC timestamp of now, as db:new writes it. */
  now(): string;
}

/**
 * A test in a copy of what the task needs, so a new file never lands in the real db/migrations/
 * (where it would be a pending migration for every other test running meanwhile); afterwards the
 * project's own db/migrations/ must be as it was.
 */
function withProjectCopy(name: string, fn: (c: Copy) => Promise<void>): void {
  Deno.test(name, async () => {
    const real = migrationFiles(`${ROOT_DIR}/db/migrations`);
    const copy = await Deno.makeTempDir({ prefix: "annotation-dbnew-" });
    try {
      for (const f of ["deno.json", "deno.lock"]) {
        await Deno.copyFile(`${ROOT_DIR}/${f}`, `${copy}/${f}`);
      }
      for (const dir of ["lib", "sql", "scripts", "db"]) {
        const res = await new Deno.Command("cp", { args: ["-R", `${ROOT_DIR}/${dir}`, copy] })
          .output();
        assert.equal(res.code, 0, decoder.decode(res.stderr));
      }
      await Deno.symlink(`${ROOT_DIR}/node_modules`, `${copy}/node_modules`);
      // db:new refuses to run while the newest migration is dated after the clock; the
      // project's newest may be (written minutes ago on a clock ahead): keep the copy's to the
      // past.
      const now = () => new Date().toISOString().replace(/[-:T]/g, "").slice(0, 14);
      for (const f of migrationFiles(`${copy}/db/migrations`)) {
        if (f.slice(0, 14) >= now()) await Deno.remove(`${copy}/db/migrations/${f}`);
      }
      const before = migrationFiles(`${copy}/db/migrations`);
      assert.ok(before.length > 0);
      await fn({ copy, config: `${copy}/deno.json`, before, now });
      assert.deepEqual(
        migrationFiles(`${ROOT_DIR}/db/migrations`),
        real,
        "the project's own db/migrations/ is untouched",
      );
    } finally {
      await Deno.remove(copy, { recursive: true });
    }
  });
}

withProjectCopy(
  "db:new: a snake_case name: one new file with up and down sections",
  async ({ copy, config, before, now }) => {
    const started = now();
    const res = await task(["db:new", "add_image_tags"], {}, { config, cwd: copy });
    assert.equal(res.code, 0, res.stderr + res.stdout);
    const after = migrationFiles(`${copy}/db/migrations`);
    const added = after.filter((f) => !before.includes(f));
    assert.equal(added.length, 1, `one new file: ${added}`);
    const m = /^(\d{14})_add_image_tags\.sql$/.exec(added[0]);
    assert.ok(m, added[0]);
    assert.ok(m[1] >= started, `UTC timestamp ${m[1]} not before ${started}`);
    assert.ok(m[1] > before.at(-1)!.slice(0, 14), "sorts after every existing migration");
    const text = await Deno.readTextFile(`${copy}/db/migrations/${added[0]}`);
    assert.match(text, /-- migrate:up/);
    assert.match(text, /-- migrate:down/);
  },
);

withProjectCopy(
  "db:new: a name that is not snake_case: exit 2, no file",
  async ({ copy, config }) => {
    const count = migrationFiles(`${copy}/db/migrations`).length;
    for (const args of [["AddTags"], ["add-tags"], ["add__tags"], [], ["a", "b"]]) {
      const res = await task(["db:new", ...args], {}, { config, cwd: copy });
      assert.equal(res.code, 2, `${args}: ${res.stderr}`);
      assert.match(res.stderr, /usage: deno task db:migrate/);
    }
    assert.equal(migrationFiles(`${copy}/db/migrations`).length, count);
  },
);

withProjectCopy(
  "db:new: a clock behind the newest migration: exit 1, no file",
  async ({ copy, config }) => {
    const future = `${copy}/db/migrations/99991231235959_from_the_future.sql`;
    await Deno.writeTextFile(future, "-- migrate:up\n-- migrate:down\n");
    const count = migrationFiles(`${copy}/db/migrations`).length;
    const res = await task(["db:new", "too_early"], {}, { config, cwd: copy });
    assert.equal(res.code, 1, res.stderr);
    assert.match(res.stderr, /is not after the newest migration \(99991231235959\)/);
    assert.equal(migrationFiles(`${copy}/db/migrations`).length, count);
    await Deno.remove(future);
  },
);

Deno.test("deno task start runs in production whatever APP_ENV says", async () => {
  for (const appEnv of [undefined, "development"]) {
    const cwd = await Deno.makeTempDir({ prefix: "annotation-start-" });
    try {
      const res = await task(["start"], appEnv ? { APP_ENV: appEnv } : {}, { cwd });
      const output = res.stdout + res.stderr;
      assert.equal(res.code, 1, output);
      // Production's configuration check, not a permission error from development mode.
      assert.match(output, /DATABASE_URL: required in production/);
      assert.match(output, /AUTH_JWT_SECRET: required in production/);
      assert.doesNotMatch(output, /NotCapable|PermissionDenied|Requires \w+ access/);
      assert.deepEqual([...Deno.readDirSync(cwd)], [], "nothing written");
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  }
});
