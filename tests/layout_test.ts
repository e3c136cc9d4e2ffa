/**
 * The layout docs/architecture.md describes: which folder may import which. A relative import the
 * table does not list fails here, so the table stays true (or is changed with the code).
 */
import assert from "node:assert/strict";
import { ROOT_DIR } from "../testkit/process.ts";

/** What a file's folder is, in the table: `lib/<name>/`, a top-level folder, or `main.ts`. */
function unit(path: string): string {
  const [top, second] = path.split("/");
  if (top === "lib") return `lib/${second}/`;
  return path.includes("/") ? `${top}/` : path;
}

/** Each folder's allowed imports: folders (`x/`) or single files (`x/y.ts`). */
const ALLOWED: Record<string, string[]> = {
  "main.ts": ["lib/db/", "lib/http/", "lib/runtime/", "lib/webhooks/", "routes/spec.ts"],
  "routes/": [
    "schemas/",
    "operations/",
    "sql/",
    "lib/http/",
    "lib/runtime/",
    "lib/auth/",
    "lib/db/",
    "lib/media/",
    "web/",
  ],
  "schemas/": ["sql/", "lib/auth/keys.ts", "lib/webhooks/events.ts", "lib/media/index.ts"],
  "operations/": [
    "sql/",
    "lib/db/",
    "lib/http/errors.ts",
    "lib/runtime/",
    "lib/auth/",
    "lib/webhooks/",
    "schemas/",
  ],
  "sql/": ["lib/db/"],
  "lib/http/": [
    "routes/",
    "schemas/common.ts",
    "lib/db/",
    "lib/auth/",
    "lib/media/",
    "lib/runtime/",
    "sql/users/",
  ],
  "lib/db/": ["lib/runtime/timer.ts", "sql/schema/"],
  "lib/auth/": ["lib/db/", "sql/users/", "lib/http/errors.ts", "lib/runtime/config.ts"],
  "lib/media/": [
    "lib/auth/url_tokens.ts",
    "lib/auth/hmac.ts",
    "lib/http/errors.ts",
    "lib/runtime/config.ts",
  ],
  "lib/webhooks/": ["lib/auth/hmac.ts", "lib/db/", "lib/runtime/", "sql/webhooks/"],
  "lib/runtime/": ["lib/db/", "lib/auth/keys.ts", "lib/media/", "sql/users/"],
  "testkit/": ["lib/", "sql/"],
  "scripts/": ["lib/", "sql/", "testkit/"],
  "stress/": ["lib/", "sql/", "schemas/", "testkit/"],
  "bench/": ["lib/", "sql/", "schemas/", "testkit/"],
};

/** Test files that unit-test a suite's own code, and so import it. */
const SUITE_TESTS = /^tests\/(bench_test|stress_[a-z_]+_test)\.ts$/;

function* sources(dir: string): Generator<string> {
  for (const entry of Deno.readDirSync(`${ROOT_DIR}/${dir}`)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) yield* sources(path);
    else if (entry.name.endsWith(".ts")) yield path;
  }
}

/** Every relative import of a file, as a path from the project root. */
function imports(path: string): string[] {
  const text = Deno.readTextFileSync(`${ROOT_DIR}/${path}`);
  const found = text.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g);
  return [...found].map((m) => {
    const url = new URL(m[1], `file:///${path}`);
    return decodeURIComponent(url.pathname.slice(1));
  });
}

const allowed = (from: string, to: string) =>
  unit(from) === unit(to) && unit(from) !== "routes/"
    ? true
    : (ALLOWED[unit(from)] ?? []).some((a) => a.endsWith("/") ? to.startsWith(a) : to === a);

Deno.test("every import is one docs/architecture.md's table allows", () => {
  const dirs = ["routes", "schemas", "operations", "sql", "lib", "testkit", "scripts", "stress"];
  const files = ["main.ts", ...dirs.flatMap((d) => [...sources(d)]), ...sources("bench")];
  const wrong = files.flatMap((f) =>
    imports(f).filter((to) => !allowed(f, to)).map((to) => `${f} imports ${to}`)
  );
  assert.deepEqual(wrong, []);
});

Deno.test("routes never import routes; tests import suites only to test them", () => {
  const routes = [...sources("routes")].flatMap((f) =>
    imports(f).filter((to) => to.startsWith("routes/")).map((to) => `${f} imports ${to}`)
  );
  assert.deepEqual(routes, []);
  const suites = [...sources("tests")].flatMap((f) =>
    imports(f).filter((to) => /^(bench|stress)\//.test(to) && !SUITE_TESTS.test(f))
      .map((to) => `${f} imports ${to}`)
  );
  assert.deepEqual(suites, []);
});

Deno.test("the layout test reads imports as they are written", () => {
  // A file this test knows: routes/claims.ts imports its operation and its schemas.
  const claims = imports("routes/claims.ts");
  assert.ok(claims.includes("operations/claims.ts"), claims.join(", "));
  assert.ok(claims.some((to) => to.startsWith("schemas/")), claims.join(", "));
  assert.ok(!allowed("lib/db/pool.ts", "routes/claims.ts"));
  assert.ok(!allowed("routes/claims.ts", "routes/images.ts"));
  assert.ok(allowed("lib/auth/tokens.ts", "lib/http/errors.ts"));
  assert.ok(!allowed("lib/auth/tokens.ts", "lib/http/app.ts"));
});
