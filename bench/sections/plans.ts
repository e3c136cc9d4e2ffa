/**
 * The claim statements' plans at full size, after the runs: `EXPLAIN (ANALYZE, BUFFERS)` of
 * sql/claims/claim_next_image.sql and of the batched claim for 16 annotators, each with its custom
 * and its generic plan, and of the naive claim. Written to --json only.
 */
import { compile } from "../../lib/db/statement.ts";
import type { Ctx } from "../lib/context.ts";

class RolledBack extends Error {}

const read = (path: string) => Deno.readTextFileSync(new URL(path, import.meta.url));

/**
 * A statement of sql/ as PostgreSQL receives it (its :name parameters as $n, lib/db/statement.ts)
 * and its values by name, in $n order.
 */
function statementOf(
  path: string,
  values: Record<string, string | null>,
): [string, (string | null)[]] {
  const { text, params } = compile(read(path));
  return [text, params.map((name) => values[name])];
}

export async function plansSection(ctx: Ctx, datasetId: string, explainUserId: string) {
  const { sql } = ctx;
  // Run for real, so inside a transaction that is rolled back; twice, the second one reported
  // (warm caches). `generic`: as a prepared statement with the generic plan, the one the
  // server's named statements may settle on after five executions.
  const explain = async (text: string, params: (string | null)[], generic = false) => {
    let plan = "";
    for (let i = 0; i < 2; i++) {
      await sql.begin(async (tx) => {
        let rows;
        if (generic) {
          await tx`SET LOCAL plan_cache_mode = force_generic_plan`;
          await tx.unsafe(`PREPARE bench_plan AS ${text}`);
          rows = await tx.unsafe(
            `EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_plan(${params.join(", ")})`,
          );
          await tx.unsafe("DEALLOCATE bench_plan");
        } else {
          rows = await tx.unsafe(`EXPLAIN (ANALYZE, BUFFERS) ${text}`, params);
        }
        plan = rows.map((row) => row["QUERY PLAN"]).join("\n");
        throw new RolledBack();
      }).catch((e) => {
        if (!(e instanceof RolledBack)) throw e;
      });
    }
    return plan;
  };
  const [claimText, claimValues] = statementOf("../../sql/claims/claim_next_image.sql", {
    dataset_id: datasetId,
    user_id: explainUserId,
    caller_role: "annotator",
  });
  const explainClaim = await explain(claimText, claimValues);
  // EXECUTE's arguments are SQL literals: the role is quoted.
  const literals = claimValues.map((v) => v === null ? "NULL" : /^\d+$/.test(v) ? v : `'${v}'`);
  const explainClaimGeneric = await explain(claimText, literals, true);
  // The batched claim (the statement most claims take: lib/db/batcher.ts) for 16 annotators.
  const batchUsers = (await sql<{ id: string }[]>`
    SELECT id::text FROM users WHERE name LIKE 'bench-annotator-%' ORDER BY id LIMIT 16`)
    .map((r) => r.id);
  const roles = batchUsers.map(() => "annotator").join(",");
  // The claim as claimNextImage's batch sends it: no submit in front of it (after_claim_ids null).
  const batch = (users: string, userRoles: string, after: string | null) =>
    statementOf("../../sql/claims/claim_next_images.sql", {
      dataset_id: datasetId,
      user_ids: users,
      user_roles: userRoles,
      after_claim_ids: after,
    });
  const explainBatch = await explain(...batch(`{${batchUsers.join(",")}}`, `{${roles}}`, null));
  const explainBatchGeneric = await explain(
    ...batch(`'{${batchUsers.join(",")}}'`, `'{${roles}}'`, "NULL"),
    true,
  );
  const naiveClaim = read("../naive_cycle.sql")
    .split("\n").filter((l) => !l.startsWith("--")).join("\n").split("\\gset")[0]
    .replaceAll(":client_id", "0").replaceAll(":dataset_id", "1");
  const explainNaive = ctx.opts.skip.has("ceiling") ? null : await explain(naiveClaim, []);
  return {
    claim_next_image: explainClaim,
    claim_next_image_generic: explainClaimGeneric,
    claim_next_images_16: explainBatch,
    claim_next_images_16_generic: explainBatchGeneric,
    naive_claim: explainNaive,
  };
}
