/**
 * The stress suite's servers run as production runs them (testkit/process.ts startLoadServer):
 * the start task's permissions, none of this process's environment, and an empty working
 * directory, so a developer's `.env` or exported variables cannot change what the suite measures.
 */
import assert from "node:assert/strict";
import {
  killHard,
  ROOT_DIR,
  serverArgs,
  startLoadServer as startServer,
  startTaskFlags,
} from "../testkit/process.ts";
import { createTestDb } from "./harness.ts";

Deno.test("stress servers: start-task flags, a clear environment, a temporary cwd", async () => {
  const args = serverArgs();
  assert.ok(!args.includes("--allow-all") && !args.includes("-A"), args.join(" "));
  assert.deepEqual(
    args.filter((a) => a.startsWith("--allow-")),
    startTaskFlags().filter((a) => a.startsWith("--allow-")),
  );

  const tdb = await createTestDb(2);
  // Inherited, this would stop the server at start-up (an invalid value).
  Deno.env.set("DB_POOL_MAX", "not-a-number");
  Deno.env.set("STRESS_LEAK_CHECK", "inherited");
  try {
    const server = await startServer({ databaseUrl: tdb.url });
    try {
      const environ = Deno.readTextFileSync(`/proc/${server.pid}/environ`).split("\0");
      assert.ok(!environ.some((v) => v.startsWith("STRESS_LEAK_CHECK=")), "env inherited");
      assert.ok(!environ.some((v) => v.startsWith("DB_POOL_MAX=")));
      const cwd = Deno.readLinkSync(`/proc/${server.pid}/cwd`);
      assert.notEqual(cwd, ROOT_DIR);
      assert.ok(!cwd.startsWith(`${ROOT_DIR}/`), `runs in ${cwd}`);
      const argv = Deno.readTextFileSync(`/proc/${server.pid}/cmdline`).split("\0");
      assert.ok(!argv.includes("--allow-all"), argv.join(" "));
      const res = await fetch(`${server.url}/readyz`);
      assert.equal(res.status, 200, await res.text());
    } finally {
      await killHard(server);
    }
  } finally {
    Deno.env.delete("DB_POOL_MAX");
    Deno.env.delete("STRESS_LEAK_CHECK");
    await tdb.close();
  }
});
