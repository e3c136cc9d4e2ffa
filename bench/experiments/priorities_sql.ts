/**
 * `[PROPOSED=file.sql] deno run -A bench/experiments/priorities_sql.ts [--images N] [--batches N]
 *   [--setup embedded|tuned] [--explain] [--http]`: setPriorities' statement
 * (sql/images/set_priorities.sql) without HTTP, against the bench's raw `UPDATE … FROM unnest(…)`
 * and optionally a proposed statement (PROPOSED, the same parameters), each on a dataset of its
 * own in one images table. `--http`: also the same batches through the server (started as the
 * bench starts it) with `fetch`, as the bench's client sends them: what HTTP adds to the statement.
 * Batches of 10,000 shuffled ids, interleaved batch by batch; prints the median ms per batch of
 * each, and the WAL each wrote per batch. `--explain`: the last batch of each is EXPLAIN (ANALYZE,
 * BUFFERS) instead, printed.
 */
import postgres from "postgres";
import type { Db } from "../../lib/db/query.ts";
import { migrate } from "../../lib/db/migrate.ts";
import { bind, inlineStatement, type Statement } from "../../lib/db/statement.ts";
import { flag, option } from "../lib/args.ts";
import { openBenchDatabase, type Setup } from "../lib/database.ts";
import { seedImages } from "../sections/setup.ts";
import { prioritiesBody } from "../lib/rows.ts";
import { adminToken } from "../../testkit/api.ts";
import { type ServerProcess, startLoadServer } from "../../testkit/process.ts";

const images = flag("--images", 1_000_000);
const batches = flag("--batches", 30);
const setup = (option("--setup") ?? "embedded") as Setup;
/** --explain: EXPLAIN (ANALYZE, BUFFERS) of the last batch of each statement. */
const explain = Deno.args.includes("--explain");
const BATCH = 10_000;
type P = Record<string, unknown>;
const load = async (path: string | URL) =>
  inlineStatement<P, Record<string, unknown>>(await Deno.readTextFile(path));
const statements: Record<string, Statement<P, Record<string, unknown>>> = {
  ours: await load(new URL("../../sql/images/set_priorities.sql", import.meta.url)),
};
const proposedFile = Deno.env.get("PROPOSED");
if (proposedFile) statements.proposed = await load(proposedFile);
const unnest = await Deno.readTextFile(new URL("../sql/unnest_priorities.sql", import.meta.url));
const http = Deno.args.includes("--http");
const names = [...Object.keys(statements), "unnest", ...(http ? ["http"] : [])];

const bench = await openBenchDatabase(setup, undefined);
const sql = postgres(bench.url, { max: 1, onnotice: () => {} });
let server: ServerProcess | undefined;
let token = "";
try {
  await migrate(sql as unknown as Db, bench.url);
  const ids: Record<string, string[]> = {};
  const datasets: Record<string, string> = {};
  for (const name of names) {
    const [{ id }] = await sql`
      INSERT INTO datasets (name, labels) VALUES (${name}, '{car}') RETURNING id::text`;
    datasets[name] = id;
    await seedImages(sql, "images", id, images);
    ids[name] = (await sql`
      SELECT id::text FROM images WHERE dataset_id = ${id} ORDER BY random()`).map((r) => r.id);
  }
  await sql`VACUUM (ANALYZE) images`;
  if (http) {
    server = await startLoadServer({ databaseUrl: bench.url });
    token = await adminToken(server.url);
  }
  await sql`CHECKPOINT`;
  const ms: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const wal: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const walNow = async () =>
    BigInt((await sql`SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn AS b`)[0].b);
  for (let b = 0; b < batches; b++) {
    const order = b % 2 ? [...names].reverse() : names;
    for (const name of order) {
      const slice = ids[name].slice((b * BATCH) % images, (b * BATCH) % images + BATCH);
      const priorities = slice.map(() => Math.random());
      if (name === "http") {
        const body = prioritiesBody(slice);
        const t = performance.now();
        const res = await fetch(`${server!.url}/api/v1/datasets/${datasets.http}/priorities`, {
          method: "PUT",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body,
        });
        const answer = await res.json();
        if (answer.updated !== slice.length) throw new Error(`http: ${JSON.stringify(answer)}`);
        ms.http.push(performance.now() - t);
        continue;
      }
      // The statement and its parameters: the raw UPDATE's two arrays, or setPriorities' own.
      const [text, params] = name === "unnest" ? [unnest, [slice, priorities]] : [
        statements[name].text,
        bind(statements[name], {
          dataset_id: datasets[name],
          image_ids: slice,
          external_ids: slice.map(() => null),
          priorities,
          caller_id: "0",
          caller_role: "admin",
        }),
      ];
      if (explain && b === batches - 1) {
        const plan = await sql.unsafe(
          `EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) ${text}`,
          params as postgres.ParameterOrJSON<never>[],
        );
        console.log(`== ${name}\n${plan.map((r) => r["QUERY PLAN"]).join("\n")}`);
        continue;
      }
      const w0 = await walNow();
      const t = performance.now();
      const rows = await sql.unsafe(text, params as postgres.ParameterOrJSON<never>[], {
        prepare: true,
      });
      const updated = name === "unnest" ? rows.count : rows[0].updated;
      if (updated !== slice.length) throw new Error(`${name} updated ${updated}`);
      ms[name].push(performance.now() - t);
      wal[name].push(Number((await walNow()) - w0));
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (const name of names.filter((n) => wal[n].length)) {
    console.log(
      `${name.padEnd(9)} median ${median(ms[name]).toFixed(1)} ms a batch ` +
        `(${(BATCH / median(ms[name]) * 1000).toFixed(0)} rows/s), WAL ${
          (median(wal[name]) / 1024).toFixed(0)
        } KiB a batch`,
    );
  }
  if (http) {
    console.log(
      `http median ${median(ms.http).toFixed(1)} ms a batch (${
        (BATCH / median(ms.http) * 1000).toFixed(0)
      } rows/s)`,
    );
  }
  for (const name of [...Object.keys(statements), ...(http ? ["http"] : [])]) {
    const r = ms[name].map((m, i) => ms.unnest[i] / m);
    console.log(`unnest / ${name}: median ${median(r).toFixed(2)}`);
  }
} finally {
  await server?.stop();
  await sql.end({ timeout: 5 });
  await bench.stop();
}
