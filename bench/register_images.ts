/**
 * `deno task bench:register [--batches N] [--json file]`: registerImages throughput over real HTTP.
 *
 * Starts a throwaway embedded PostgreSQL under .data/ (default durability: fsync on), migrates it,
 * serves the app with Deno.serve on a free port and POSTs batches of 10,000 realistic images:
 * first from one client (batches one after another), then from two clients at once. Each client
 * runs in its own Worker, so building bodies and reading answers never competes with the server
 * for its thread. Reports images/s (images / wall time) and per-batch latency.
 */
import { createApp } from "../lib/http/app.ts";
import { newApiKey, newJwtSecret } from "../lib/auth/keys.ts";
import { bootstrapUsers } from "../lib/runtime/bootstrap.ts";
import { parseConfig } from "../lib/runtime/config.ts";
import { connect } from "../lib/db/pool.ts";
import { freePort, startEmbeddedPostgres } from "../lib/runtime/embedded_pg.ts";
import { silentLogger } from "../lib/runtime/log.ts";
import { migrate } from "../lib/db/migrate.ts";

const BATCH = 10_000;

interface Job {
  base: string;
  token: string;
  datasetId: string;
  /** Batch numbers this client sends, in order (they make the external ids unique). */
  batches: number[];
  tag: string;
}

type ToWorker = { kind: "prepare"; job: Job } | { kind: "go" };
type FromWorker =
  | { kind: "ready" }
  | { kind: "done"; latenciesMs: number[]; created: number }
  | { kind: "failed"; error: string };

// ---------------------------------------------------------------------------------------------
// Client (runs inside a Worker)

function batchBody(tag: string, batch: number): string {
  const images = Array.from({ length: BATCH }, (_, i) => {
    const n = batch * BATCH + i;
    return {
      uri: `s3://bench-bucket/${tag}/frames/${String(n).padStart(8, "0")}.jpg`,
      external_id: `${tag}-${n}`,
      width: 1920,
      height: i % 4 === 0 ? 1200 : 1080,
      priority: Math.random(),
      metadata: { camera: `cam-${n % 8}`, frame: n, split: n % 10 === 0 ? "val" : "train" },
    };
  });
  return JSON.stringify({ images });
}

function runClient(): void {
  const scope = globalThis as unknown as {
    onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
    postMessage(m: FromWorker): void;
  };
  let job: Job;
  let bodies: string[] = [];
  scope.onmessage = async (e) => {
    try {
      if (e.data.kind === "prepare") {
        job = e.data.job;
        bodies = job.batches.map((b) => batchBody(job.tag, b));
        scope.postMessage({ kind: "ready" });
        return;
      }
      const latenciesMs: number[] = [];
      let created = 0;
      for (const body of bodies) {
        const started = performance.now();
        const res = await fetch(`${job.base}/api/v1/datasets/${job.datasetId}/images`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${job.token}` },
          body,
        });
        const answer = await res.json();
        latenciesMs.push(performance.now() - started);
        if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${JSON.stringify(answer)}`);
        created += answer.created;
      }
      scope.postMessage({ kind: "done", latenciesMs, created });
    } catch (err) {
      scope.postMessage({ kind: "failed", error: String(err) });
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Driver

interface Figures {
  clients: number;
  batches: number;
  images: number;
  wall_s: number;
  images_per_s: number;
  batch_p50_ms: number;
  batch_p99_ms: number;
  batch_max_ms: number;
}

/** Nearest-rank percentile. */
function percentile(sorted: number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

function parseArgs(args: string[]): { batches: number; json?: string } {
  let batches = 20;
  let json: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === "--batches") batches = Number(value());
    else if (arg.startsWith("--batches=")) batches = Number(arg.slice("--batches=".length));
    else if (arg === "--json") json = value();
    else if (arg.startsWith("--json=")) json = arg.slice("--json=".length);
    else throw new Error(`unknown argument ${arg}\nusage: --batches N (default 20) --json FILE`);
  }
  if (!Number.isInteger(batches) || batches < 2) throw new Error("--batches: an integer >= 2");
  return { batches, json };
}

/** Runs `jobs` at once, one Worker each; wall time counts from the moment all are ready. */
async function runClients(jobs: Job[]): Promise<{ wallS: number; latencies: number[] }> {
  const workers = jobs.map(() => new Worker(import.meta.url, { type: "module" }));
  try {
    const next = (w: Worker) =>
      new Promise<FromWorker>((resolve) => {
        w.onmessage = (e: MessageEvent<FromWorker>) => resolve(e.data);
        w.onerror = (e) => {
          e.preventDefault();
          resolve({ kind: "failed", error: e.message });
        };
      });
    const check = (m: FromWorker) => {
      if (m.kind === "failed") throw new Error(`client failed: ${m.error}`);
      return m;
    };
    const ready = workers.map(next);
    workers.forEach((w, i) => w.postMessage({ kind: "prepare", job: jobs[i] } as ToWorker));
    (await Promise.all(ready)).forEach(check);

    const done = workers.map(next);
    const started = performance.now();
    workers.forEach((w) => w.postMessage({ kind: "go" } as ToWorker));
    const results = (await Promise.all(done)).map(check);
    const wallS = (performance.now() - started) / 1000;

    const latencies: number[] = [];
    for (const [i, r] of results.entries()) {
      if (r.kind !== "done") throw new Error("unexpected message");
      if (r.created !== jobs[i].batches.length * BATCH) {
        throw new Error(`client ${i} created ${r.created} images, expected all new`);
      }
      latencies.push(...r.latenciesMs);
    }
    return { wallS, latencies };
  } finally {
    workers.forEach((w) => w.terminate());
  }
}

function figures(clients: number, batches: number, wallS: number, latencies: number[]): Figures {
  const sorted = [...latencies].sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 10) / 10;
  return {
    clients,
    batches,
    images: batches * BATCH,
    wall_s: Math.round(wallS * 100) / 100,
    images_per_s: Math.round((batches * BATCH) / wallS),
    batch_p50_ms: round(percentile(sorted, 50)),
    batch_p99_ms: round(percentile(sorted, 99)),
    batch_max_ms: round(sorted[sorted.length - 1]),
  };
}

async function main() {
  const { batches, json } = parseArgs(Deno.args);
  const pg = await startEmbeddedPostgres({
    dir: `.data/bench-postgres-${Deno.pid}`,
    port: freePort(),
    database: "bench",
    persistent: false,
  });
  const apiKey = newApiKey();
  const config = parseConfig({
    APP_ENV: "production",
    DATABASE_URL: pg.url,
    AUTH_JWT_SECRET: newJwtSecret(),
    ADMIN_API_KEY: apiKey,
    LOG_LEVEL: "error",
  });
  const db = connect(pg.url, {
    max: config.db.poolMax,
    connectTimeoutSeconds: config.db.connectTimeoutSeconds,
    statementTimeoutMs: config.db.statementTimeoutMs,
  });
  let server: Deno.HttpServer<Deno.NetAddr> | undefined;
  try {
    await migrate(db, pg.url);
    await bootstrapUsers(db, config, silentLogger);
    const app = createApp({ db, config, log: silentLogger });
    server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
    const base = `http://127.0.0.1:${server.addr.port}`;

    const call = async (method: string, path: string, body: unknown, token?: string) => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: {
          "content-type": "application/json",
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify(body),
      });
      const answer = await res.json();
      if (!res.ok) {
        throw new Error(`${method} ${path}: HTTP ${res.status} ${JSON.stringify(answer)}`);
      }
      return answer;
    };
    const { access_token: token } = await call("POST", "/api/v1/auth/token", { api_key: apiKey });
    const dataset = async (name: string): Promise<string> =>
      (await call("POST", "/api/v1/datasets", { name, labels: ["car", "person"] }, token)).id;

    const [{ version }] = await db<{ version: string }[]>`SELECT version()`;
    console.log(`PostgreSQL: ${version.split(" ").slice(0, 2).join(" ")} (embedded, fsync on)`);
    console.log(`CPUs: ${navigator.hardwareConcurrency}; batches of ${BATCH} images\n`);

    // Warm-up (not measured): prepared statements, JIT, connection pool.
    await runClients([{ base, token, datasetId: await dataset("warmup"), batches: [0], tag: "w" }]);

    const seqId = await dataset("sequential");
    const seqRun = await runClients([{
      base,
      token,
      datasetId: seqId,
      batches: Array.from({ length: batches }, (_, b) => b),
      tag: "seq",
    }]);
    const sequential = figures(1, batches, seqRun.wallS, seqRun.latencies);

    const concId = await dataset("concurrent");
    const all = Array.from({ length: batches }, (_, b) => b);
    const concRun = await runClients([
      { base, token, datasetId: concId, batches: all.filter((b) => b % 2 === 0), tag: "conc" },
      { base, token, datasetId: concId, batches: all.filter((b) => b % 2 === 1), tag: "conc" },
    ]);
    const concurrent = figures(2, batches, concRun.wallS, concRun.latencies);

    for (const id of [seqId, concId]) {
      const d = await call("GET", `/api/v1/datasets/${id}`, undefined, token);
      if (d.image_count !== batches * BATCH) {
        throw new Error(`dataset ${id} has ${d.image_count} images, expected ${batches * BATCH}`);
      }
    }

    const rows = [sequential, concurrent];
    const header = ["clients", "images", "wall s", "images/s", "p50 ms", "p99 ms", "max ms"];
    const table = rows.map((r) =>
      [
        r.clients,
        r.images,
        r.wall_s,
        r.images_per_s,
        r.batch_p50_ms,
        r.batch_p99_ms,
        r.batch_max_ms,
      ].map(String)
    );
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
    const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join("  ");
    console.log(line(header));
    for (const row of table) console.log(line(row));

    if (json) {
      await Deno.writeTextFile(
        json,
        JSON.stringify(
          {
            benchmark: "registerImages",
            batch_size: BATCH,
            postgres: version,
            cpus: navigator.hardwareConcurrency,
            date: new Date().toISOString(),
            sequential,
            concurrent,
          },
          null,
          2,
        ) + "\n",
      );
      console.log(`\nfigures written to ${json}`);
    }
  } finally {
    await server?.shutdown();
    await db.end({ timeout: 5 });
    await pg.stop();
  }
}

const inWorker =
  typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined";

if (inWorker) {
  runClient();
} else if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exit(1);
  }
}
