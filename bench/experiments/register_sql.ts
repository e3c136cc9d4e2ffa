/**
 * `[PROPOSED=file.sql] deno run -A bench/experiments/register_sql.ts [--batches N]`:
 * registerImages' two statements without HTTP, against COPY and optionally a proposed statement
 * (PROPOSED, taking the same parameters: the dataset and one JSON array per column). Batches of
 * 10,000 new images, each statement into its own dataset of the same table, interleaved batch
 * by batch; then a re-sent batch (every row existing) to register_images.sql and to PROPOSED,
 * checking they give the same answer. Prints ms per batch as the datasets grow, and medians.
 *
 * - register_images.sql: the general statement (ON CONFLICT skips what exists, answers its id).
 * - insert_new_images.sql: the fast path for a batch of new external_ids (a plain INSERT).
 */
import postgres from "postgres";
import type { Db } from "../../lib/db/query.ts";
import { freePort, startEmbeddedPostgres } from "../../lib/runtime/embedded_pg.ts";
import { migrate } from "../../lib/db/migrate.ts";
import { imageBatch, type ImageBatchParams } from "../../sql/images/queries.ts";
import { copyText, imageRow } from "../lib/rows.ts";
import { flag } from "../lib/args.ts";
import { bind, inlineStatement, type Statement } from "../../lib/db/statement.ts";

const batches = flag("--batches", 30);
const BATCH = 10_000;
const read = (path: string | URL) => Deno.readTextFile(path);
/** The statements as the server runs them: named parameters bound by lib/db/statement.ts. */
const load = async (path: string | URL) =>
  inlineStatement<ImageBatchParams, Record<string, unknown>>(await read(path));
const statements: Record<string, Statement<ImageBatchParams, Record<string, unknown>>> = {
  register: await load(new URL("../../sql/images/register_images.sql", import.meta.url)),
  insert_new: await load(new URL("../../sql/images/insert_new_images.sql", import.meta.url)),
};
const proposedFile = Deno.env.get("PROPOSED");
if (proposedFile) statements.proposed = await load(proposedFile);
const copy = await read(new URL("../sql/copy_images.sql", import.meta.url));
const names = [...Object.keys(statements), "copy"];

const pg = await startEmbeddedPostgres({
  dir: `.data/bench-register-sql-${Deno.pid}`,
  port: freePort(),
  database: "register",
  persistent: false,
});
const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
try {
  await migrate(sql as unknown as Db, pg.url);
  const ids: Record<string, string> = {};
  for (const name of names) {
    const [{ id }] = await sql`
      INSERT INTO datasets (name, labels) VALUES (${name}, '{car}') RETURNING id::text`;
    ids[name] = id;
  }
  await sql`ANALYZE`;
  const params = (name: string, first: number) =>
    bind(
      statements[name],
      imageBatch(
        ids[name],
        Array.from({ length: BATCH }, (_, k) => imageRow("r", first + k)),
        { caller_id: "0", caller_role: "admin" },
      ),
    ) as postgres.ParameterOrJSON<never>[];
  const timed = async (fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };
  const ms: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  console.log(`images in dataset  ${names.map((n) => `${n} ms`.padStart(14)).join("")}`);
  for (let b = 0; b < batches; b++) {
    const first = b * BATCH + 1;
    for (const [name, statement] of Object.entries(statements)) {
      const p = params(name, first);
      ms[name].push(await timed(() => sql.unsafe(statement.text, p, { prepare: true })));
    }
    const text = copyText(ids.copy, "r", first, BATCH);
    ms.copy.push(
      await timed(async () => {
        const w = await sql.unsafe(copy).writable();
        await new Promise<void>((resolve, reject) => {
          w.on("finish", resolve);
          w.on("error", reject);
          w.end(text);
        });
      }),
    );
    if (b % 5 === 4 || b === 0) {
      const cells = names.map((n) => ms[n][b].toFixed(0).padStart(14)).join("");
      console.log(`${String((b + 1) * BATCH).padStart(17)}  ${cells}`);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1].toFixed(0);
  console.log(`${"median".padStart(17)}  ${names.map((n) => median(ms[n]).padStart(14)).join("")}`);
  if (statements.proposed) {
    // A re-sent batch: every row exists; both must answer the existing ids, in order.
    const [x, y] = await Promise.all(
      ["register", "proposed"].map((n) =>
        sql.unsafe(statements[n].text, params(n, 1), { prepare: true })
      ),
    );
    const ok = x.length === y.length &&
      x.every((r, k) =>
        r.created === false && y[k].created === false &&
        Number(r.id) - Number(x[0].id) === Number(y[k].id) - Number(y[0].id)
      );
    console.log(`re-sent batch: ${ok ? "same answer (all existing, in order)" : "DIFFERENT"}`);
  }
} finally {
  await sql.end();
  await pg.stop();
}
