/**
 * `deno task spec:lint [URL]`: the OpenAPI document linted by Redocly (`@redocly/cli lint`, run by
 * npx at a fixed version) with the rules of redocly.yaml and the exceptions of
 * .redocly.lint-ignore.yaml. CI runs it (.ci/run).
 *
 * The document is the one the server serves at /api/openapi.json: built here by createApp (no
 * database is reached: the document needs none), or fetched from URL, a running server's
 * `/api/openapi.json`. It is written to .data/openapi.json, the path the ignore file names.
 */
import { createApp } from "../lib/http/app.ts";
import { connect } from "../lib/db/pool.ts";
import { parseConfig } from "../lib/runtime/config.ts";
import { silentLogger } from "../lib/runtime/log.ts";

const REDOCLY = "@redocly/cli@2.77.0";
const OUTPUT = ".data/openapi.json";
const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");

/** The document as createApp serves it. */
export async function builtDocument(): Promise<unknown> {
  const url = "postgres://unused@127.0.0.1:9/unused";
  const config = parseConfig({
    APP_ENV: "test",
    DATABASE_URL: url,
    AUTH_JWT_SECRET: "spec-lint-secret-spec-lint-secret-0123",
  });
  // postgres.js connects on the first query, and building the document makes none.
  const db = connect(url, { max: 1, connectTimeoutSeconds: 1, statementTimeoutMs: 1000 });
  try {
    const app = createApp({ db, config, log: silentLogger });
    return await (await app.request("/api/openapi.json")).json();
  } finally {
    await db.end({ timeout: 0 });
  }
}

if (import.meta.main) {
  const url = Deno.args[0];
  const document = url ? await (await fetch(url)).json() : await builtDocument();
  await Deno.mkdir(`${ROOT}/.data`, { recursive: true });
  await Deno.writeTextFile(`${ROOT}/${OUTPUT}`, JSON.stringify(document, null, 2) + "\n");
  console.log(`linting ${url ?? "the document createApp builds"} (${OUTPUT}) with ${REDOCLY}`);
  const { code } = await new Deno.Command("npx", {
    args: ["--yes", REDOCLY, "lint", "--config", "redocly.yaml", OUTPUT],
    cwd: ROOT,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  Deno.exit(code);
}
