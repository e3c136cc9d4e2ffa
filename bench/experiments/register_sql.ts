/**
 * `[PROPOSED=file.sql] deno run -A bench/experiments/register_sql.ts [--batches N]`:
 * registerImages' statement (sql/images/register_images.sql) against a proposed one (PROPOSED,
 * taking the same parameters; the current statement again when unset) and COPY, without HTTP: batches of 10,000 new images into one dataset, the three
 * interleaved batch by batch into three datasets of the same table, and a re-sent batch (all
 * rows existing) at the end. Prints ms per batch as the datasets grow, and checks both
 * statements give the same answer to the re-sent batch.
 */
import postgres from "postgres";
import type { Db } from "../../lib/db.ts";
import { freePort, startEmbeddedPostgres } from "../../lib/embedded_pg.ts";
import { migrate } from "../../lib/migrate.ts";
import { copyText, imageRow } from "../lib/rows.ts";

const i = Deno.args.indexOf("--batches");
const batches = i >= 0 ? Number(Deno.args[i + 1]) : 30;
const BATCH = 10_000;
const current = await Deno.readTextFile(
  new URL("../../sql/images/register_images.sql", import.meta.url),
);
const proposed = await Deno.readTextFile(
  Deno.env.get("PROPOSED") ?? new URL("../../sql/images/register_images.sql", import.meta.url),
);
const copy = await Deno.readTextFile(new URL("../sql/copy_images.sql", import.meta.url));

const pg = await startEmbeddedPostgres({
  dir: `.data/bench-register-sql-${Deno.pid}`,
  port: freePort(),
  database: "register",
  persistent: false,
});
const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
try {
  await migrate(sql as unknown as Db, pg.url);
  const ids: string[] = [];
  for (const name of ["current", "proposed", "copy"]) {
    const [{ id }] = await sql`
      INSERT INTO datasets (name, labels) VALUES (${name}, '{car}') RETURNING id::text`;
    ids.push(id);
  }
  await sql`ANALYZE`;
  const params = (datasetId: string, first: number) => {
    const rows = Array.from({ length: BATCH }, (_, k) => imageRow("r", first + k));
    // register_images.sql's shape: the rows as one JSON parameter.
    return [datasetId, rows] as unknown as postgres.ParameterOrJSON<never>[];
  };
  const timed = async (fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };
  console.log("images in dataset   current ms   proposed ms   COPY ms");
  for (let b = 0; b < batches; b++) {
    const first = b * BATCH + 1;
    const a = await timed(() => sql.unsafe(current, params(ids[0], first), { prepare: true }));
    const p = await timed(() => sql.unsafe(proposed, params(ids[1], first), { prepare: true }));
    const text = copyText(ids[2], "r", first, BATCH);
    const c = await timed(async () => {
      const w = await sql.unsafe(copy).writable();
      await new Promise<void>((resolve, reject) => {
        w.on("finish", resolve);
        w.on("error", reject);
        w.end(text);
      });
    });
    if (b % 5 === 4 || b === 0) {
      console.log(
        `${String((b + 1) * BATCH).padStart(17)}  ${a.toFixed(0).padStart(11)}  ` +
          `${p.toFixed(0).padStart(12)}  ${c.toFixed(0).padStart(8)}`,
      );
    }
  }
  // A re-sent batch: every row exists; both must answer the existing ids, in order.
  const again = [ids[0], ids[1]].map((id) =>
    sql.unsafe(id === ids[0] ? current : proposed, params(id, 1), { prepare: true })
  );
  const [x, y] = await Promise.all(again);
  const ok = x.length === y.length &&
    x.every((r, k) =>
      r.created === false && y[k].created === false &&
      Number(r.id) - Number(x[0].id) === Number(y[k].id) - Number(y[0].id)
    );
  console.log(`re-sent batch: ${ok ? "same answer (all existing, in order)" : "DIFFERENT"}`);
} finally {
  await sql.end();
  await pg.stop();
}
