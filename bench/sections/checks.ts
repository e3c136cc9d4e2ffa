/**
 * No image handed to two annotators: for every dataset the HTTP cycle ran on, the database's
 * record (claims = distinct images claimed = claims completed = human annotations = distinct
 * images annotated = the cycles the clients counted, bench/sql/verify_claims.sql), and no image
 * id received by two clients; for the naive table, one annotation per image.
 */
import { type Ctx, fmt, log, sqlFile } from "../lib/context.ts";
import type { HttpRun } from "./cycle.ts";

export async function checksSection(
  ctx: Ctx,
  /** Each dataset's name in the report, its id (undefined: not used) and the runs on it. */
  datasets: (readonly [string, string | undefined, HttpRun[]])[],
  naiveRan: boolean,
) {
  const { sql } = ctx;
  const handed = new Map<string, number>();
  for (const [, , runs] of datasets) {
    for (const run of runs) {
      for (const id of run.imageIds) handed.set(id, (handed.get(id) ?? 0) + 1);
    }
  }
  const clientDuplicates = [...handed.values()].filter((n) => n > 1).length;
  const verify = sqlFile("verify_claims");
  const checks: Record<string, unknown>[] = [];
  let consistent = clientDuplicates === 0;
  for (const [name, id, runs] of datasets) {
    if (!id) continue;
    const expected = runs.reduce((a, r) => a + r.cycles, 0);
    const [row] = await sql.unsafe(verify, [id]);
    const values = [
      row.claims,
      row.images_claimed,
      row.completed,
      row.annotations,
      row.images_annotated,
    ];
    const ok = values.every((v) => v === expected);
    consistent &&= ok;
    checks.push({ dataset: name, expected_cycles: expected, ...row, ok });
  }
  if (naiveRan) {
    const [row] = await sql`
      SELECT count(*)::integer AS annotations, count(DISTINCT image_id)::integer AS images
      FROM naive_annotations`;
    checks.push({ dataset: "naive", ...row, ok: row.annotations === row.images });
  }
  log(
    `\nchecks: ${
      consistent ? "no image was handed to two annotators" : "INCONSISTENT"
    } (claims table, annotations, and the ${fmt(handed.size)} image ids the clients received)`,
  );
  return { consistent, checks, clientDuplicates, claimsChecked: handed.size };
}
