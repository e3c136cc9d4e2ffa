/**
 * A statement's query plans, for tests that pin an index choice: the custom plan, and the generic
 * one a prepared statement may settle on after a few runs (postgres.js prepares every statement).
 */
import assert from "node:assert/strict";
import { transaction } from "../lib/db/query.ts";
import type { Db } from "../lib/db/pool.ts";
import { bind, type Statement } from "../lib/db/statement.ts";
import { rawExec, rawOne } from "./harness.ts";

export type PlanNode = Record<string, unknown>;

/** Every node of an EXPLAIN (FORMAT JSON) plan, the root first. */
export function planNodes(plan: PlanNode): PlanNode[] {
  const children = (plan.Plans as PlanNode[] | undefined) ?? [];
  return [plan, ...children.flatMap(planNodes)];
}

/**
 * The type of each `$n` parameter of the statement, from its first `$n::type` cast (every
 * statement casts its parameters): a generic plan is prepared with them.
 */
function paramTypes<P>(stmt: Statement<P, unknown>): string[] {
  return stmt.params.map((name, i) => {
    const cast = stmt.text.match(new RegExp(`\\$${i + 1}::([a-z0-9_ ]+(?:\\[\\])?)`));
    if (!cast) throw new Error(`sql/${stmt.file}.sql: :${name} has no cast`);
    return cast[1];
  });
}

/** `check` on the statement's custom plan with `params`, then on its generic plan. */
export async function checkPlans<P extends object>(
  db: Db,
  stmt: Statement<P, unknown>,
  params: P,
  check: (plan: PlanNode, what: string) => void,
): Promise<void> {
  type Explained = { "QUERY PLAN": [{ Plan: PlanNode }] };
  const values = bind(stmt, params);
  const custom = await rawOne<Explained>(db, `EXPLAIN (FORMAT JSON) ${stmt.text}`, values);
  check(custom!["QUERY PLAN"][0].Plan, "custom plan");
  await transaction(db, async (tx) => {
    const types = paramTypes(stmt);
    await rawExec(tx, "SET LOCAL plan_cache_mode = force_generic_plan", []);
    await rawExec(tx, `PREPARE generic_plan (${types.join(", ")}) AS ${stmt.text}`, []);
    // EXECUTE's arguments inside EXPLAIN take no bind parameters: literals, quoted by PostgreSQL.
    const quoted = await rawOne<{ args: string[] }>(
      tx,
      `SELECT ARRAY[${
        types.map((type, i) => `quote_nullable($${i + 1}::${type}) || '::${type}'`).join(", ")
      }] AS args`,
      values,
    );
    const generic = await rawOne<Explained>(
      tx,
      `EXPLAIN (FORMAT JSON) EXECUTE generic_plan (${quoted!.args.join(", ")})`,
      [],
    );
    check(generic!["QUERY PLAN"][0].Plan, "generic plan");
    await rawExec(tx, "DEALLOCATE generic_plan", []);
  });
}

/**
 * Asserts that the plan reads `relation` (a scan; an update or delete of it aside), and only
 * through `index` (a bitmap heap scan names its index on the node below it).
 */
export function assertReadsThrough(
  plan: PlanNode,
  relation: string,
  index: string,
  what: string,
): void {
  const reads = planNodes(plan).filter((n) =>
    n["Relation Name"] === relation && n["Node Type"] !== "ModifyTable"
  );
  assert.ok(reads.length > 0, `${what}: ${relation} not read`);
  for (const read of reads) {
    const used = planNodes(read).find((n) => n["Index Name"])?.["Index Name"];
    assert.equal(used, index, `${what}: ${read["Node Type"]} of ${relation} (${used})`);
  }
}
