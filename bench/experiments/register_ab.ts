/**
 * `deno run -A bench/experiments/register_ab.ts [--batches N] [--a K=V]... [--b K=V]...`:
 * registerImages latency of two server configurations, paired.
 *
 * Starts two servers on one database, as the bench starts one (production settings, its own
 * process), each with its own extra environment (`--a`, `--b`), and sends 10,000-image batches to
 * them in turn (A, B, A, B, ...), one at a time, from one client, each server to its own dataset.
 * Load from elsewhere on the machine hits both alike, so the difference of the medians means more
 * than two bench runs do. Prints each server's request p50 and mean, and its CPU per batch.
 */
import postgres from "postgres";
import { migrate } from "../../lib/db/migrate.ts";
import type { Db } from "../../lib/db/query.ts";
import { openBenchDatabase } from "../lib/database.ts";
import { adminToken, createDataset } from "../../testkit/api.ts";
import { startLoadServer } from "../../testkit/process.ts";
import { registerBody } from "../lib/rows.ts";

const args = Deno.args;
const batches = args.includes("--batches") ? Number(args[args.indexOf("--batches") + 1]) : 40;
const envOf = (flag: string) =>
  Object.fromEntries(
    args.flatMap((a, i) => a === flag ? [args[i + 1].split(/=(.*)/s).slice(0, 2)] : []),
  );
const configs = [{ name: "A", env: envOf("--a") }, { name: "B", env: envOf("--b") }];

const db = await openBenchDatabase(Deno.env.get("DATABASE_URL"));
const sql = postgres(db.url, { max: 1, onnotice: () => {} });
try {
  await migrate(sql as unknown as Db, db.url);
  const servers = [];
  for (const c of configs) {
    const server = await startLoadServer({ databaseUrl: db.url, env: c.env });
    const token = await adminToken(server.url);
    const datasetId = await createDataset(server.url, token, `ab-${c.name}`, ["car"]);
    servers.push({ ...c, server, token, datasetId, ms: [] as number[], cpuS: 0 });
  }
  for (let b = 0; b < 2 * batches; b++) {
    const s = servers[b % 2];
    const body = registerBody(`ab${s.name}`, Math.floor(b / 2) * 10_000 + 1, 10_000);
    const cpu0 = s.server.cpuSeconds();
    const t0 = performance.now();
    const res = await fetch(`${s.server.url}/api/v1/datasets/${s.datasetId}/images`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" },
      body,
    });
    const th = performance.now() - t0;
    const answer = await res.json();
    const ms = performance.now() - t0;
    if (Deno.env.get("AB_TRACE")) {
      console.log(
        s.name,
        "total",
        ms.toFixed(0),
        "headers",
        th.toFixed(0),
        "server mw",
        Number(res.headers.get("x-t")).toFixed(0),
      );
    }
    if (res.status !== 200 || answer.created !== 10_000 || answer.images.length !== 10_000) {
      throw new Error(`HTTP ${res.status} ${JSON.stringify(answer).slice(0, 300)}`);
    }
    // The first batches of each warm the JIT up.
    if (b >= 4) {
      s.ms.push(ms);
      s.cpuS += s.server.cpuSeconds() - cpu0;
    }
  }
  for (const s of servers) {
    const sorted = [...s.ms].sort((a, b) => a - b);
    const mean = s.ms.reduce((a, b) => a + b, 0) / s.ms.length;
    console.log(
      `${s.name} ${JSON.stringify(s.env)}: p50 ${
        sorted[Math.floor(sorted.length / 2)].toFixed(1)
      } ms, ` +
        `mean ${mean.toFixed(1)} ms, server CPU ${(1000 * s.cpuS / s.ms.length).toFixed(0)} ms ` +
        `per batch, peak RSS ${s.server.peakRssMiB().toFixed(0)} MiB`,
    );
  }
  for (const s of servers) await s.server.stop();
} finally {
  await sql.end();
  await db.stop();
}
