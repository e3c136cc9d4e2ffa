/** The `.env` reader: parseDotEnv's syntax, and readEnv's layering under the environment. */
import assert from "node:assert/strict";
import { ConfigError, parseConfig, parseDotEnv, readEnv } from "../lib/runtime/config.ts";

Deno.test("parseDotEnv", async (t) => {
  await t.step("quoted values lose their quotes, also before a comment", () => {
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

  await t.step("double quotes take escapes; single quotes are literal", () => {
    assert.deepEqual(
      parseDotEnv(`A="line1\\nline2"\nB='line1\\nline2'\nC="say \\"hi\\""\nD="back\\\\slash"`),
      { A: "line1\nline2", B: "line1\\nline2", C: 'say "hi"', D: "back\\slash" },
    );
  });

  await t.step("bare values: a comment needs whitespace before its #", () => {
    assert.deepEqual(
      parseDotEnv("A=plain # comment\nB=a#b\nC=  spaced value  \nD= # only a comment"),
      { A: "plain", B: "a#b", C: "spaced value", D: "" },
    );
  });

  await t.step("comment lines, blank lines, export prefixes, junk", () => {
    assert.deepEqual(
      parseDotEnv(
        "# a comment\n\n   # indented comment\nexport A=1\nexport  B = 2\nnot an assignment\n" +
          "1BAD=x\r\nC=3\r\n",
      ),
      { A: "1", B: "2", C: "3" },
    );
  });

  await t.step("empty values", () => {
    assert.deepEqual(parseDotEnv(`A=\nB=""\nC=''\nD= `), { A: "", B: "", C: "", D: "" });
  });

  await t.step("= in values", () => {
    assert.deepEqual(
      parseDotEnv(
        'DATABASE_URL=postgres://u:p@h/db?sslmode=require&x=1\nB="a=b=c"\nC=k==\n',
      ),
      { DATABASE_URL: "postgres://u:p@h/db?sslmode=require&x=1", B: "a=b=c", C: "k==" },
    );
  });

  await t.step("unterminated or trailing quotes stay part of a bare value", () => {
    assert.deepEqual(
      parseDotEnv(`A="open\nB=v"\nC="a" junk`),
      { A: `"open`, B: `v"`, C: `"a" junk` },
    );
  });

  await t.step("the last assignment of a key wins", () => {
    assert.deepEqual(parseDotEnv("A=1\nA=2"), { A: "2" });
  });
});

Deno.test("readEnv: .env under the environment", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "annotation-env-" });
  const path = `${dir}/.env`;
  const name = `ANNOTATION_TEST_${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`;
  try {
    await t.step("a missing file is no file", () => {
      const env = readEnv(`${dir}/missing.env`);
      assert.equal(env.PATH, Deno.env.get("PATH"));
      assert.equal(env[name], undefined);
    });

    await t.step("the file fills in what the environment does not set", async () => {
      await Deno.writeTextFile(path, `${name}_A="from file" # note\n${name}_B=file\n`);
      Deno.env.set(`${name}_B`, "from environment");
      try {
        const env = readEnv(path);
        assert.equal(env[`${name}_A`], "from file");
        assert.equal(env[`${name}_B`], "from environment", "the environment wins");
      } finally {
        Deno.env.delete(`${name}_B`);
      }
    });

    await t.step("a quoted value with a comment reaches the configuration intact", async () => {
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
    });

    await t.step("an unreadable path is an error, not an empty file", () => {
      assert.throws(() => readEnv(dir));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseConfig: settings that would be ignored alone stop start-up", async (t) => {
  const problems = (vars: Record<string, string>) => {
    try {
      parseConfig(vars);
      return [];
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      return e.problems;
    }
  };
  await t.step("DB_PASSWORD or DB_PORT without the other DB_* variables", () => {
    assert.match(problems({ DB_PASSWORD: "x" }).join("\n"), /^DB_PASSWORD: set without DB_USER/m);
    assert.match(problems({ DB_PORT: "5433" }).join("\n"), /^DB_PORT: set without DB_USER/m);
    assert.deepEqual(
      problems({ DB_USER: "u", DB_HOST: "h", DB_NAME: "n", DB_PASSWORD: "p", DB_PORT: "5433" }),
      [],
    );
  });
  await t.step("AUTH_ISSUER or AUTH_AUDIENCE without AUTH_JWKS_URL", () => {
    assert.match(problems({ AUTH_ISSUER: "https://idp" }).join("\n"), /^AUTH_ISSUER: applies to/m);
    assert.match(problems({ AUTH_AUDIENCE: "api" }).join("\n"), /^AUTH_AUDIENCE: applies to/m);
  });
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
