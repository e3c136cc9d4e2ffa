/**
 * `deno task db:dump`: writes db/schema.sql, the schema the migrations add up to, as dbmate dumps
 * it (pg_dump --schema-only, then the applied versions), so a reviewer reads the current shape
 * instead of replaying every migration and a schema change shows as a diff. tests/schema_test.ts
 * fails when the committed file is not what the migrations give.
 *
 * pg_dump must be at least the server's major version, and the embedded PostgreSQL ships none,
 * so the dump is taken from a throwaway cluster of the distribution's PostgreSQL
 * (testkit/debian_postgres.ts). Lines that change from one run or pg_dump build to the next
 * (the versions in the header, `\restrict` keys) are left out.
 */
import { dbmate } from "../lib/db/migrate.ts";
import { createDatabase, startDebianCluster } from "../testkit/debian_postgres.ts";

export const SCHEMA_FILE = new URL("../db/schema.sql", import.meta.url);

/** What pg_dump writes differently per run or per build of the same major version. */
function normalise(dump: string): string {
  return dump.split("\n")
    .filter((line) => !/^-- Dumped (from|by) /.test(line) && !/^\\(un)?restrict /.test(line))
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trimStart();
}

/** The schema the migrations in db/migrations give, as db/schema.sql holds it. */
export async function dumpSchema(): Promise<string> {
  const cluster = await startDebianCluster({ fsync: "off" });
  const out = await Deno.makeTempFile({ suffix: ".sql" });
  try {
    const url = await createDatabase(cluster, "schema");
    const env = { PATH: `${cluster.bin}:${Deno.env.get("PATH") ?? ""}` };
    for (const args of [["up"], ["--schema-file", out, "dump"]]) {
      const result = await dbmate(url, args, env);
      if (result.code !== 0) {
        throw new Error(`dbmate ${args.at(-1)} failed:\n${result.stderr || result.stdout}`);
      }
    }
    return normalise(await Deno.readTextFile(out));
  } finally {
    await Deno.remove(out).catch(() => {});
    await cluster.destroy();
  }
}

if (import.meta.main) {
  const schema = await dumpSchema();
  await Deno.writeTextFile(SCHEMA_FILE, schema);
  console.log(`wrote ${decodeURIComponent(SCHEMA_FILE.pathname)} (${schema.length} bytes)`);
}
