/**
 * Several server processes starting at once on one database (a deploy of replicas) all ensure
 * the ADMIN_API_KEY admin. Found by `deno task stress`: of two servers started together on a
 * fresh database, one exited at start-up with "duplicate key value violates unique constraint
 * users_api_key_hash_key" (ON CONFLICT (name) does not cover the race on the key's own index).
 */
import assert from "node:assert/strict";
import { bootstrapUsers } from "../lib/runtime/bootstrap.ts";
import { connect } from "../lib/db/pool.ts";
import { silentLogger } from "../lib/runtime/log.ts";
import { createTestDb, testConfig } from "./harness.ts";

Deno.test("replicas starting together all ensure the same admin", async () => {
  const tdb = await createTestDb();
  const pools = Array.from(
    { length: 8 },
    () => connect(tdb.url, { max: 1, connectTimeoutSeconds: 10, statementTimeoutMs: 10_000 }),
  );
  try {
    for (let round = 0; round < 15; round++) {
      const config = testConfig({
        ADMIN_API_KEY: `ak_replica_race_${round}_${"k".repeat(40)}`,
        ADMIN_NAME: `admin-${round}`,
      });
      // Every pool connected first, so the eight statements really run together.
      await Promise.all(pools.map((p) => p`SELECT 1`));
      await Promise.all(pools.map((p) => bootstrapUsers(p, config, silentLogger)));
      const rows = await tdb.db`SELECT id FROM users WHERE name = ${`admin-${round}`}`;
      assert.equal(rows.length, 1);
    }
  } finally {
    await Promise.all(pools.map((p) => p.end({ timeout: 1 })));
    await tdb.close();
  }
});
