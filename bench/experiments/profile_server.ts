/**
 * `deno run -A bench/experiments/profile_server.ts [--images N] [--cycles N] [--concurrency N]
 *   [--top N] [--out FILE] [--root DIR] [--server-flag F]... [--ingest] [--webhook] [--media]
 *   [--no-profile]`:
 * where the server's CPU goes in the annotator cycle (or, with --ingest, in registerImages).
 *
 * Starts the server as the bench does (its own process, production settings) with the V8
 * inspector on, seeds one dataset, and runs `--concurrency` annotators (claim -> submit one bbox)
 * on the lean HTTP/1.1 client while the inspector's sampling profiler records the server. Prints
 * the functions with the most self time and, grouped by package, where the time was spent;
 * `--out` keeps the .cpuprofile (Chrome DevTools opens it). `--root DIR` profiles the server of
 * another checkout (a worktree of another commit, after `deno install` in it). `--webhook`: one
 * webhook subscribed to annotation.created, delivered to a receiver on 127.0.0.1
 * (testkit/webhook_receiver.ts), so the delivery worker's sends share the server with the cycle.
 */
import postgres from "postgres";
import { migrate } from "../../lib/db/migrate.ts";
import type { Db } from "../../lib/db/pool.ts";
import { freePort } from "../../lib/runtime/embedded_pg.ts";
import { adminToken, createAnnotators } from "../../testkit/api.ts";
import { startLoadServer } from "../../testkit/process.ts";
import { startReceiver } from "../../testkit/webhook_receiver.ts";
import { openBenchDatabase } from "../lib/database.ts";
import { Http1Client } from "../lib/http1.ts";
import { registerBody } from "../lib/rows.ts";
import { all, flag, has, option } from "../lib/args.ts";
import { seedImages } from "../sections/setup.ts";
import { MEDIA_ENV } from "../lib/media.ts";

const out = option("--out");
/** --server-flag F (repeatable): an extra `deno run` flag for the server, e.g. --v8-flags=... */
const serverFlags = all("--server-flag");
const root = option("--root");
const images = flag("--images", 100_000);
const cycles = flag("--cycles", 6_000);
const concurrency = flag("--concurrency", 32);
const top = flag("--top", 40);
/** --ingest: registerImages batches of 10,000 (one client) instead of the annotator cycle. */
const ingest = has("--ingest");
/** --webhook: one webhook on annotation.created, its receiver in this process. */
const webhook = has("--webhook");
/** --media: S3 presigning on (bench/lib/media.ts): every claim answer carries a presigned URL. */
const media = has("--media");
/** --no-profile: only the CPU figure, without the sampling profiler's own cost. */
const profiling = !has("--no-profile");

/** A minimal Chrome DevTools protocol client over the inspector's WebSocket. */
async function inspector(port: number) {
  let list: { webSocketDebuggerUrl: string }[] = [];
  for (let i = 0; i < 50 && !list.length; i++) {
    try {
      list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const ws = new WebSocket(list[0].webSocketDebuggerUrl);
  await new Promise((r) => ws.onopen = r);
  let next = 1;
  const waiting = new Map<number, (v: unknown) => void>();
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    if (msg.id && waiting.has(msg.id)) {
      waiting.get(msg.id)!(msg.result);
      waiting.delete(msg.id);
    }
  };
  return {
    send<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
      const id = next++;
      ws.send(JSON.stringify({ id, method, params }));
      return new Promise((r) => waiting.set(id, r as (v: unknown) => void));
    },
    close: () => ws.close(),
  };
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function packageOf(url: string): string {
  const m = /node_modules\/\.deno\/([^/]+)\//.exec(url) ?? /registry\.npmjs\.org\/([^/]+\/[^/]+)/
    .exec(url);
  if (m) return m[1];
  if (url.includes("/work/") || url.startsWith("file://")) {
    const p = /\/(lib|routes|sql)\/[^/]+$/.exec(url);
    return p ? `app ${p[0].slice(1)}` : "app";
  }
  return url ? url.replace(/^ext:/, "ext:").split("/").slice(0, 2).join("/") : "(native)";
}

const db = await openBenchDatabase("embedded", Deno.env.get("DATABASE_URL"));
const sql = postgres(db.url, { max: 2, onnotice: () => {} });
const inspectPort = freePort();
const server = await (async () => {
  await migrate(sql as unknown as Db, db.url);
  return await startLoadServer({
    databaseUrl: db.url,
    root,
    env: {
      ...(webhook ? { WEBHOOK_ALLOW_PRIVATE_TARGETS: "true" } : {}),
      ...(media ? MEDIA_ENV : {}),
    },
    flags: [...serverFlags, ...(profiling ? [`--inspect=127.0.0.1:${inspectPort}`] : [])],
  });
})();
const receiver = webhook ? startReceiver() : undefined;
try {
  const admin = await adminToken(server.url);
  if (receiver) {
    const res = await fetch(`${server.url}/api/v1/webhooks`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ url: receiver.url, events: ["annotation.created"] }),
    });
    if (res.status !== 201) throw new Error(`createWebhook ${res.status} ${await res.text()}`);
    await res.body?.cancel();
  }
  // Made in SQL, `open`, so that a server of older code (--root) that predates the dataset's
  // `access` reads it as any dataset.
  const [ds] = await sql<{ id: string }[]>`
    INSERT INTO datasets (name, labels, access)
    VALUES ('profile', ${["car", "person"]}::text[], 'open')
    RETURNING id::text`;
  await seedImages(sql, "images", ds.id, images);
  await sql`VACUUM (ANALYZE)`;
  const tokens = await createAnnotators(server.url, admin, concurrency, "profile-annotator");
  let budget = 0;
  const body = JSON.stringify({
    labels: ["car"],
    shapes: [{ type: "bbox", label: "car", x: 10, y: 20, width: 100, height: 50 }],
  });
  let batchNo = 0;
  const registerBatches = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const res = await fetch(`${server.url}/api/v1/datasets/${ds.id}/images`, {
        method: "POST",
        headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
        body: registerBody("p", 1_000_000 + 10_000 * batchNo++, 10_000),
      });
      if (res.status !== 200) throw new Error(`register ${res.status} ${await res.text()}`);
      await res.body?.cancel();
    }
  };
  const cycleRun = async (n: number) => {
    budget = n;
    await Promise.all(tokens.map(async (token) => {
      const client = Http1Client.fromUrl(server.url);
      const auth = `authorization: Bearer ${token}\r\n`;
      const json = `${auth}content-type: application/json\r\n`;
      while (budget-- > 0) {
        const res = await client.request("POST", `/api/v1/datasets/${ds.id}/claims`, auth);
        if (res.status !== 201) throw new Error(`claim ${res.status} ${res.body}`);
        const { claim } = JSON.parse(res.body);
        const made = await client.request(
          "POST",
          `/api/v1/images/${claim.image_id}/annotations`,
          json,
          body.slice(0, -1) + `,"claim_id":"${claim.id}"}`,
        );
        if (made.status !== 201) throw new Error(`submit ${made.status} ${made.body}`);
      }
      client.close();
    }));
  };
  // --ingest: `cycles` counts batches.
  const run = ingest ? registerBatches : cycleRun;
  await run(ingest ? 2 : 1_000); // warm-up: JIT, prepared statements, plans
  await sql`ANALYZE`;
  if (!profiling) {
    for (let round = 0; round < 3; round++) {
      const cpu0 = server.cpuSeconds();
      const t0 = performance.now();
      await run(cycles);
      const wall = (performance.now() - t0) / 1000;
      console.log(
        `${cycles} ${ingest ? "batches" : `cycles, ${concurrency} annotators`}, ` +
          `${(cycles / wall).toFixed(ingest ? 2 : 0)}/s; server CPU ` +
          `${(1000 * (server.cpuSeconds() - cpu0) / cycles).toFixed(3)} ms each; ` +
          `RSS ${server.rssMiB().toFixed(0)} MiB, peak ${server.peakRssMiB().toFixed(0)} MiB`,
      );
    }
  } else {
    await profileRun(run);
  }
  if (receiver) console.log(`webhook: ${receiver.received.length} deliveries received in all`);
} finally {
  await server.stop();
  await receiver?.close();
  await sql.end();
  await db.stop();
}

async function profileRun(run: (n: number) => Promise<void>) {
  const ins = await inspector(inspectPort);
  await ins.send("Profiler.enable");
  await ins.send("Profiler.setSamplingInterval", { interval: 200 });
  const cpu0 = server.cpuSeconds();
  const t0 = performance.now();
  await ins.send("Profiler.start");
  await run(cycles);
  const { profile } = await ins.send<{ profile: Profile }>("Profiler.stop");
  const wall = (performance.now() - t0) / 1000;
  const cpu = server.cpuSeconds() - cpu0;
  ins.close();
  if (out) await Deno.writeTextFile(out, JSON.stringify(profile));

  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + profile.timeDeltas[i]));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const byFn = new Map<string, number>();
  const byPkg = new Map<string, number>();
  for (const n of profile.nodes) {
    const t = self.get(n.id) ?? 0;
    if (!t) continue;
    const f = n.callFrame;
    const key = `${f.functionName || "(anonymous)"} ${
      f.url.replace(/^.*node_modules\/\.deno\//, "").replace(/^file:\/\/.*\/main\//, "")
    }:${f.lineNumber + 1}`;
    byFn.set(key, (byFn.get(key) ?? 0) + t);
    const pkg = packageOf(f.url);
    byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + t);
  }
  const pct = (t: number) => `${(100 * t / total).toFixed(1).padStart(5)} %`;
  console.log(
    `${cycles} cycles, ${concurrency} annotators, ${(cycles / wall).toFixed(0)} cycles/s; ` +
      `server CPU ${(1000 * cpu / cycles).toFixed(3)} ms per cycle (process, all threads)`,
  );
  console.log("\nself time by package:");
  for (const [k, t] of [...byPkg].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
    console.log(`${pct(t)}  ${k}`);
  }
  console.log("\nself time by function:");
  for (const [k, t] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${pct(t)}  ${k}`);
  }
}
