/** The `.env` reader: parseDotEnv's syntax, and readEnv's layering under the environment. */
import assert from "node:assert/strict";
import { ConfigError, parseConfig, parseDotEnv, readEnv } from "../lib/runtime/config.ts";

Deno.test("parseDotEnv: quoted values lose their quotes, also before a comment", () => {
  assert.deepEqual(
    parseDotEnv(
      [
        `A="v" # comment`,
        `B='v'   # comment`,
        `C="v"`,
        `D='v'`,
        `E="v"#tight comment`,
        `F="with # hash inside" # and a comment`,
        `G='single # hash' #c`,
      ].join("\n"),
    ),
    {
      A: "v",
      B: "v",
      C: "v",
      D: "v",
      E: "v",
      F: "with # hash inside",
      G: "single # hash",
    },
  );
});

Deno.test("parseDotEnv: double quotes take escapes; single quotes are literal", () => {
  assert.deepEqual(
    parseDotEnv(`A="line1\\nline2"\nB='line1\\nline2'\nC="say \\"hi\\""\nD="back\\\\slash"`),
    { A: "line1\nline2", B: "line1\\nline2", C: 'say "hi"', D: "back\\slash" },
  );
});

Deno.test("parseDotEnv: bare values: a comment needs whitespace before its #", () => {
  assert.deepEqual(
    parseDotEnv("A=plain # comment\nB=a#b\nC=  spaced value  \nD= # only a comment"),
    { A: "plain", B: "a#b", C: "spaced value", D: "" },
  );
});

Deno.test("parseDotEnv: comment lines, blank lines, export prefixes, junk", () => {
  assert.deepEqual(
    parseDotEnv(
      "# a comment\n\n   # indented comment\nexport A=1\nexport  B = 2\nnot an assignment\n" +
        "1BAD=x\r\nC=3\r\n",
    ),
    { A: "1", B: "2", C: "3" },
  );
});

Deno.test("parseDotEnv: empty values", () => {
  assert.deepEqual(parseDotEnv(`A=\nB=""\nC=''\nD= `), { A: "", B: "", C: "", D: "" });
});

Deno.test("parseDotEnv: = in values", () => {
  assert.deepEqual(
    parseDotEnv(
      'DATABASE_URL=postgres://u:p@h/db?sslmode=require&x=1\nB="a=b=c"\nC=k==\n',
    ),
    { DATABASE_URL: "postgres://u:p@h/db?sslmode=require&x=1", B: "a=b=c", C: "k==" },
  );
});

Deno.test("parseDotEnv: unterminated or trailing quotes stay part of a bare value", () => {
  assert.deepEqual(
    parseDotEnv(`A="open\nB=v"\nC="a" junk`),
    { A: `"open`, B: `v"`, C: `"a" junk` },
  );
});

Deno.test("parseDotEnv: the last assignment of a key wins", () => {
  assert.deepEqual(parseDotEnv("A=1\nA=2"), { A: "2" });
});

// readEnv: .env under the environment.

/** A test with its own temporary directory (removed after) and a variable name nobody uses. */
function withEnvDir(
  name: string,
  fn: (t: { dir: string; path: string; name: string }) => Promise<void> | void,
): void {
  Deno.test(name, async () => {
    const dir = await Deno.makeTempDir({ prefix: "annotation-env-" });
    try {
      await fn({
        dir,
        path: `${dir}/.env`,
        name: `ANNOTATION_TEST_${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`,
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

withEnvDir("readEnv: a missing file is no file", ({ dir, name }) => {
  const env = readEnv(`${dir}/missing.env`);
  assert.equal(env.PATH, Deno.env.get("PATH"));
  assert.equal(env[name], undefined);
});

withEnvDir(
  "readEnv: the file fills in what the environment does not set",
  async ({ path, name }) => {
    await Deno.writeTextFile(path, `${name}_A="from file" # note\n${name}_B=file\n`);
    Deno.env.set(`${name}_B`, "from environment");
    try {
      const env = readEnv(path);
      assert.equal(env[`${name}_A`], "from file");
      assert.equal(env[`${name}_B`], "from environment", "the environment wins");
    } finally {
      Deno.env.delete(`${name}_B`);
    }
  },
);

withEnvDir(
  "readEnv: a quoted value with a comment reaches the configuration intact",
  async ({ path }) => {
    await Deno.writeTextFile(path, `PORT="8123" # the port\nLOG_LEVEL='warn' # quiet\n`);
    const env = readEnv(path);
    const config = parseConfig({
      APP_ENV: "test",
      DATABASE_URL: "postgres://u@h/db",
      AUTH_JWT_SECRET: "x".repeat(32),
      PORT: env.PORT,
      LOG_LEVEL: env.LOG_LEVEL,
    });
    assert.equal(config.port, 8123);
    assert.equal(config.logLevel, "warn");
  },
);

withEnvDir("readEnv: an unreadable path is an error, not an empty file", ({ dir }) => {
  assert.throws(() => readEnv(dir));
});

// parseConfig: settings that would be ignored alone stop start-up.

/** parseConfig's problems with these variables ([] when it accepts them). */
function problems(vars: Record<string, string>): string[] {
  try {
    parseConfig(vars);
    return [];
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems;
  }
}

Deno.test("parseConfig: DB_PASSWORD or DB_PORT without the other DB_* variables stop start-up", () => {
  assert.match(problems({ DB_PASSWORD: "x" }).join("\n"), /^DB_PASSWORD: set without DB_USER/m);
  assert.match(problems({ DB_PORT: "5433" }).join("\n"), /^DB_PORT: set without DB_USER/m);
  assert.deepEqual(
    problems({ DB_USER: "u", DB_HOST: "h", DB_NAME: "n", DB_PASSWORD: "p", DB_PORT: "5433" }),
    [],
  );
});
Deno.test("parseConfig: AUTH_ISSUER or AUTH_AUDIENCE without AUTH_JWKS_URL stop start-up", () => {
  assert.match(problems({ AUTH_ISSUER: "https://idp" }).join("\n"), /^AUTH_ISSUER: applies to/m);
  assert.match(problems({ AUTH_AUDIENCE: "api" }).join("\n"), /^AUTH_AUDIENCE: applies to/m);
});

Deno.test("parseConfig: DB_BATCH_LINGER_MS", () => {
  assert.equal(parseConfig({}).db.batchLingerMs, 1);
  assert.equal(parseConfig({ DB_BATCH_LINGER_MS: "0" }).db.batchLingerMs, 0);
  assert.equal(parseConfig({ DB_BATCH_LINGER_MS: "50" }).db.batchLingerMs, 50);
  for (const bad of ["-1", "51", "0.5", "soon"]) {
    assert.throws(
      () => parseConfig({ DB_BATCH_LINGER_MS: bad }),
      (e) =>
        e instanceof ConfigError && e.problems.some((p) => p.startsWith("DB_BATCH_LINGER_MS:")),
      bad,
    );
  }
});

Deno.test("parseConfig: DB_BATCH_MAX", () => {
  assert.equal(parseConfig({}).db.batchMax, 64);
  assert.equal(parseConfig({ DB_BATCH_MAX: "0" }).db.batchMax, 0);
  for (const bad of ["-1", "1001", "2.5", "many"]) {
    assert.throws(
      () => parseConfig({ DB_BATCH_MAX: bad }),
      (e) => e instanceof ConfigError && e.problems.some((p) => p.startsWith("DB_BATCH_MAX:")),
      bad,
    );
  }
});

Deno.test("parseConfig: WEBHOOK_RETRY_SCHEDULE: delays in seconds, about 3 days by default", () => {
  const standard = parseConfig({}).webhooks.retrySchedule;
  assert.deepEqual(standard.slice(0, 5), [5, 300, 1800, 7200, 18000]);
  const days = standard.reduce((a, b) => a + b, 0) / 86400;
  assert.ok(days > 2.5 && days < 3.5, `${days} days`);
  assert.deepEqual(
    parseConfig({ WEBHOOK_RETRY_SCHEDULE: "0.2, 0.2,60" }).webhooks.retrySchedule,
    [0.2, 0.2, 60],
  );
  // Empty is unset, as for every variable: the default.
  assert.deepEqual(parseConfig({ WEBHOOK_RETRY_SCHEDULE: "" }).webhooks.retrySchedule, standard);
  const many = Array(101).fill("1").join(",");
  for (const bad of ["5,,6", "-1", "1e3", "604801", "soon", many]) {
    assert.throws(
      () => parseConfig({ WEBHOOK_RETRY_SCHEDULE: bad }),
      (e) =>
        e instanceof ConfigError &&
        e.problems.some((p) => p.startsWith("WEBHOOK_RETRY_SCHEDULE:")),
      bad,
    );
  }
});

Deno.test("parseConfig: WEBHOOK_RETENTION_DAYS: 30 by default, 1 to 3650", () => {
  assert.equal(parseConfig({}).webhooks.retentionDays, 30);
  assert.equal(parseConfig({ WEBHOOK_RETENTION_DAYS: "7" }).webhooks.retentionDays, 7);
  for (const bad of ["0", "3651", "1.5", "-1", "forever"]) {
    assert.match(
      problems({ WEBHOOK_RETENTION_DAYS: bad }).join("\n"),
      /^WEBHOOK_RETENTION_DAYS:/m,
      bad,
    );
  }
});

Deno.test("parseConfig: WEBHOOK_ALLOW_PRIVATE_TARGETS: unset, true in development only", () => {
  const allow = (vars: Record<string, string>) =>
    parseConfig(vars, { tokens: false }).webhooks.allowPrivateTargets;
  assert.equal(allow({}), true);
  assert.equal(allow({ APP_ENV: "test" }), false);
  assert.equal(allow({ APP_ENV: "development", WEBHOOK_ALLOW_PRIVATE_TARGETS: "false" }), false);
  assert.equal(allow({ APP_ENV: "test", WEBHOOK_ALLOW_PRIVATE_TARGETS: "true" }), true);
  assert.match(
    problems({ WEBHOOK_ALLOW_PRIVATE_TARGETS: "yes" }).join("\n"),
    /^WEBHOOK_ALLOW_PRIVATE_TARGETS:/m,
  );
});

// parseConfig: media (S3, Cloud Storage, local files, CORS).

Deno.test("parseConfig media: nothing set: nothing but https:// is served, and no CORS", () => {
  const media = parseConfig({ APP_ENV: "test" }).media;
  assert.deepEqual(media, {
    publicUrl: undefined,
    corsOrigins: [],
    origins: [],
    localRoot: undefined,
    s3: undefined,
    gcs: undefined,
  });
});
Deno.test(
  "parseConfig media: development serves file:// from DATA_DIR/media unless MEDIA_LOCAL_ROOT says",
  () => {
    assert.equal(parseConfig({}).media.localRoot, `${Deno.cwd()}/.data/media`);
    assert.equal(parseConfig({ DATA_DIR: "/tmp/d" }).media.localRoot, "/tmp/d/media");
    assert.equal(parseConfig({ MEDIA_LOCAL_ROOT: "/srv/img" }).media.localRoot, "/srv/img");
    assert.equal(parseConfig({ APP_ENV: "test" }).media.localRoot, undefined);
  },
);
Deno.test("parseConfig media: S3: on with a region (the SDK's chain) or an endpoint; keys come in pairs", () => {
  assert.deepEqual(parseConfig({ AWS_REGION: "eu-west-1" }).media.s3, {
    region: "eu-west-1",
    endpoint: undefined,
    forcePathStyle: false,
    credentials: undefined,
  });
  const minio = parseConfig({
    AWS_ENDPOINT_URL_S3: "http://localhost:9000",
    S3_FORCE_PATH_STYLE: "true",
    AWS_ACCESS_KEY_ID: "k",
    AWS_SECRET_ACCESS_KEY: "s",
  }).media.s3;
  assert.equal(minio?.region, "us-east-1");
  assert.equal(minio?.forcePathStyle, true);
  assert.deepEqual(minio?.credentials, {
    accessKeyId: "k",
    secretAccessKey: "s",
    sessionToken: undefined,
  });
  assert.match(
    problems({ AWS_ACCESS_KEY_ID: "k" }).join("\n"),
    /^AWS_SECRET_ACCESS_KEY: required/m,
  );
  assert.match(
    problems({ AWS_ACCESS_KEY_ID: "k", AWS_SECRET_ACCESS_KEY: "s" }).join("\n"),
    /^AWS_REGION: required with AWS_ACCESS_KEY_ID/m,
  );
  assert.match(problems({ AWS_SESSION_TOKEN: "t" }).join("\n"), /^AWS_SESSION_TOKEN: only used/m);
  assert.match(problems({ S3_FORCE_PATH_STYLE: "yes" }).join("\n"), /^S3_FORCE_PATH_STYLE:/m);
  assert.match(
    problems({ AWS_ENDPOINT_URL_S3: "minio:9000" }).join("\n"),
    /^AWS_ENDPOINT_URL_S3:/m,
  );
});
Deno.test("parseConfig media: Cloud Storage: the HMAC key's id and secret together", () => {
  assert.deepEqual(
    parseConfig({ GCS_HMAC_ACCESS_KEY_ID: "GOOG1", GCS_HMAC_SECRET: "s" }).media.gcs,
    { accessKeyId: "GOOG1", secret: "s" },
  );
  assert.match(
    problems({ GCS_HMAC_SECRET: "s" }).join("\n"),
    /^GCS_HMAC_ACCESS_KEY_ID: required/m,
  );
});
Deno.test("parseConfig media: CORS_ORIGINS: a list of origins, nothing else", () => {
  assert.deepEqual(
    parseConfig({ CORS_ORIGINS: "https://a.example.com, http://localhost:5173," }).media
      .corsOrigins,
    ["https://a.example.com", "http://localhost:5173"],
  );
  for (const bad of ["https://a.example.com/app", "a.example.com", "*"]) {
    assert.match(
      problems({ CORS_ORIGINS: bad }).join("\n"),
      /^CORS_ORIGINS: .* is not an origin/m,
    );
  }
});
Deno.test("parseConfig media: MEDIA_ORIGINS: a list of origins, nothing else", () => {
  assert.deepEqual(
    parseConfig({ MEDIA_ORIGINS: "https://images.example.com,http://cdn.example.com:8080" })
      .media.origins,
    ["https://images.example.com", "http://cdn.example.com:8080"],
  );
  for (const bad of ["https://images.example.com/pets", "https:", "*"]) {
    assert.match(
      problems({ MEDIA_ORIGINS: bad }).join("\n"),
      /^MEDIA_ORIGINS: .* is not an origin/m,
    );
  }
});

Deno.test("parseConfig media: PUBLIC_URL: an http(s) URL, kept without a trailing slash", () => {
  assert.equal(
    parseConfig({ PUBLIC_URL: "https://annotate.example.com/" }).media.publicUrl,
    "https://annotate.example.com",
  );
  assert.match(problems({ PUBLIC_URL: "annotate.example.com" }).join("\n"), /^PUBLIC_URL:/m);
});
