/**
 * `deno run -A bench/experiments/memory_mixed.ts [--images N] [--cycles N] [--inspect]
 *   [--trace-gc] [--server-env K=V]... [--server-flag F]... [--setup embedded|tuned]`:
 * what holds the server's memory under the bench's mixed load (sections/mixed_memory.ts: two
 * registerImages streams of `--images` each at once, then 32 annotators with plain fetch clients
 * for `--cycles`), on a fresh server.
 *
 * Always: the RSS timeline's peak per phase and its split into anonymous and file-backed pages
 * (/proc). `--inspect`: the server runs with the V8 inspector; every 100 ms this reads
 * `Deno.memoryUsage()` inside it (V8 heap used and committed, `external`: ArrayBuffers and
 * strings outside the heap), and at each new high of the heap a sampling heap profile (live
 * objects, by the function that allocated them). The inspector costs CPU and some memory of its
 * own, and its calls make V8 collect more often (27 full GCs in a run instead of 10): use it for
 * the shares, and the plain run for the peak. `--profile-at-mib N` with `--inspect`: nothing but
 * one sampling profile, of what the annotators allocated and V8 has not collected yet, when the
 * RSS first reaches N MiB in their phase. `--trace-gc`: V8's GC trace, the
 * heap before and after each collection and what kind it was (every line to $GC_TRACE_FILE).
 */
import postgres from "postgres";
import { migrate } from "../../lib/db/migrate.ts";
import type { Db } from "../../lib/db/query.ts";
import { freePort } from "../../lib/runtime/embedded_pg.ts";
import { adminToken, createAnnotators } from "../../testkit/api.ts";
import { postmasterOf } from "../../testkit/proc.ts";
import { startLoadServer } from "../../testkit/process.ts";
import type { Ctx } from "../lib/context.ts";
import { openBenchDatabase } from "../lib/database.ts";
import { parseArgs } from "../options.ts";
import { mixedLoad, RssSampler } from "../sections/mixed_memory.ts";
import { all, flag, has, option } from "../lib/args.ts";

const images = flag("--images", 50_000);
const cycles = flag("--cycles", 10_000);
const inspect = has("--inspect");
/** One profile only, when the RSS first reaches this in the annotators' phase: nothing else polls. */
const profileAtMiB = flag("--profile-at-mib", 0);
const traceGc = has("--trace-gc");
const setup = option("--setup") === "tuned" ? "tuned" : "embedded";
const serverEnv = Object.fromEntries(all("--server-env").map((kv) => kv.split(/=(.*)/s)));

const MIB = 1024 * 1024;

/**
 * The process's resident memory by mapping (/proc/<pid>/smaps): file-backed pages by file, the
 * brk heap, stacks, and anonymous mappings by reserved size (V8 reserves its heap in 256 KiB
 * pages and larger regions; glibc gives each thread that calls malloc an arena of 64 MiB).
 */
function residentByMapping(pid: number): string[] {
  const text = Deno.readTextFileSync(`/proc/${pid}/smaps`);
  const groups = new Map<string, { rss: number; n: number }>();
  let key = "";
  for (const line of text.split("\n")) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const size = (parseInt(head[2], 16) - parseInt(head[1], 16)) / 1024;
      const path = head[4];
      key = path.startsWith("/")
        ? `file ${path.replace(/^.*\//, "")}`
        : path
        ? path
        : size >= 60 * 1024
        ? "anon >= 60 MiB reserved"
        : size >= 1024
        ? "anon 1-60 MiB reserved"
        : "anon < 1 MiB reserved";
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) {
      const g = groups.get(key) ?? { rss: 0, n: 0 };
      g.rss += Number(rss[1]);
      g.n++;
      groups.set(key, g);
    }
  }
  return [...groups.entries()].sort((a, b) => b[1].rss - a[1].rss).slice(0, 8)
    .map(([k, g]) => `${(g.rss / 1024).toFixed(1)} MiB in ${g.n} mappings: ${k}`);
}
const mib = (n: number) => Math.round((10 * n) / MIB) / 10;

/** A Chrome DevTools Protocol session with the server's inspector. */
class Inspector {
  #ws: WebSocket;
  #id = 0;
  #waiting = new Map<number, (m: { result?: unknown; error?: unknown }) => void>();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      this.#waiting.get(m.id)?.(m);
      this.#waiting.delete(m.id);
    };
  }

  static async connect(port: number): Promise<Inspector> {
    const [target] = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
    const ws = new WebSocket(target.webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    return new Inspector(ws);
  }

  // deno-lint-ignore no-explicit-any
  send(method: string, params: Record<string, unknown> = {}): Promise<any> {
    const id = ++this.#id;
    return new Promise((resolve, reject) => {
      this.#waiting.set(
        id,
        (m) => m.error ? reject(new Error(JSON.stringify(m.error))) : resolve(m.result),
      );
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }

  close() {
    this.#ws.close();
  }
}

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

/** Live sampled bytes by allocating function (and by the nearest frame in our own code). */
function allocationSites(head: ProfileNode) {
  const bySite = new Map<string, number>();
  const byOurs = new Map<string, number>();
  const walk = (node: ProfileNode, ours: string) => {
    const f = node.callFrame;
    const file = f.url.replace(/^.*\/(node_modules\/\.deno\/|wt-[^/]+\/)/, "");
    const site = `${f.functionName || "(anonymous)"} ${file}:${f.lineNumber + 1}`;
    const mine = f.url.startsWith("file://") && !f.url.includes("node_modules") ? site : ours;
    if (node.selfSize) {
      bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
      byOurs.set(mine, (byOurs.get(mine) ?? 0) + node.selfSize);
    }
    for (const c of node.children) walk(c, mine);
  };
  walk(head, "(runtime)");
  const top = (m: Map<string, number>) =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([k, v]) =>
      `${mib(v)} MiB  ${k}`
    );
  return {
    total: mib([...bySite.values()].reduce((a, b) => a + b, 0)),
    sites: top(bySite),
    ours: top(byOurs),
  };
}

const db = await openBenchDatabase(setup, Deno.env.get("DATABASE_URL"));
const sql = postgres(db.url, { max: 2, onnotice: () => {} });
try {
  await migrate(sql as unknown as Db, db.url);
  const [{ pid }] = await sql<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
  // Users made on a server of their own, so the measured one starts untouched.
  const setupServer = await startLoadServer({ databaseUrl: db.url });
  const admin = await adminToken(setupServer.url);
  const tokens = await createAnnotators(setupServer.url, admin, 32, "memory-annotator");
  await setupServer.stop();

  const inspectPort = freePort();
  const flags = [
    ...all("--server-flag"),
    ...(inspect ? [`--inspect=127.0.0.1:${inspectPort}`] : []),
    ...(traceGc ? ["--v8-flags=--trace-gc"] : []),
  ];
  const server = await startLoadServer({
    databaseUrl: db.url,
    env: serverEnv,
    flags,
    keepLines: traceGc ? 1_000_000 : 2_000,
  });
  const ctx = {
    opts: parseArgs([]),
    sql,
    url: db.url,
    server,
    serverEnv,
    postmaster: postmasterOf(pid),
    adminToken: admin,
    tokens,
    queue: "",
    fused: { supported: false, note: "" },
    noteRss() {},
  } as Ctx;

  const sampler = new RssSampler(server);
  let inspector: Inspector | undefined;
  let heapTimer: ReturnType<typeof setInterval> | undefined;
  const heap = {
    max: { heapUsed: 0, heapTotal: 0, external: 0, rss: 0, phase: "" },
    atMaxExternal: { heapUsed: 0, heapTotal: 0, external: 0, rss: 0, phase: "" },
  };
  // Sampling restarts when a phase starts, so the profile at a phase's high holds what that
  // phase allocated and V8 has not collected yet: live objects and garbage awaiting a full GC.
  const profileAtPeak: Record<string, ReturnType<typeof allocationSites>> = {};
  if (inspect) {
    inspector = await Inspector.connect(inspectPort);
    await inspector.send("HeapProfiler.enable");
    let sampling = "";
    let lastProfile = 0;
    const phaseHigh = new Map<string, number>();
    let busy = false;
    heapTimer = setInterval(async () => {
      if (busy || !inspector) return;
      busy = true;
      try {
        const phase = sampler.currentPhase;
        if (profileAtMiB) {
          // Quiet mode: sampling from the annotators' start, one profile when the RSS is high.
          if (phase === "annotators" && !sampling) {
            await inspector.send("HeapProfiler.startSampling", { samplingInterval: 16_384 });
            sampling = phase;
          }
          if (sampling && !profileAtPeak[phase] && server.rssMiB() >= profileAtMiB) {
            const profile = await inspector.send("HeapProfiler.getSamplingProfile");
            profileAtPeak[phase] = allocationSites(profile.profile.head);
          }
          return;
        }
        if (phase !== sampling) {
          if (sampling) await inspector.send("HeapProfiler.stopSampling");
          await inspector.send("HeapProfiler.startSampling", { samplingInterval: 16_384 });
          sampling = phase;
        }
        const r = await inspector.send("Runtime.evaluate", {
          expression: "JSON.stringify(Deno.memoryUsage())",
          returnByValue: true,
        });
        const m = JSON.parse(r.result.value);
        if (m.heapUsed > heap.max.heapUsed) heap.max = { ...m, phase };
        if (m.external > heap.atMaxExternal.external) heap.atMaxExternal = { ...m, phase };
        // A profile at each new high of the phase, at most one a second (each costs the server).
        if (m.heapUsed > (phaseHigh.get(phase) ?? 0) && performance.now() - lastProfile > 1000) {
          phaseHigh.set(phase, m.heapUsed);
          lastProfile = performance.now();
          const profile = await inspector.send("HeapProfiler.getSamplingProfile");
          profileAtPeak[phase] = allocationSites(profile.profile.head);
        }
      } catch {
        // The server is stopping.
      } finally {
        busy = false;
      }
    }, 200);
  }

  const smaps: Record<string, string[]> = {};
  const smapsTimer = setInterval(() => {
    smaps[sampler.currentPhase] = residentByMapping(server.pid);
  }, 500);
  const { figures } = await mixedLoad(ctx, server, {
    imagesPerStream: images,
    cycles,
    annotators: 32,
  }, sampler);
  clearInterval(smapsTimer);
  smaps.end = residentByMapping(server.pid);
  clearInterval(heapTimer);
  const { timeline: _, ...rest } = figures;
  console.log(JSON.stringify(rest, null, 2));
  for (const [phase, lines] of Object.entries(smaps)) {
    console.log(`\nresident by mapping, late in the ${phase}:\n  ${lines.join("\n  ")}`);
  }
  if (inspect) {
    const show = (m: typeof heap.max) =>
      `rss ${mib(m.rss)}, heap used ${mib(m.heapUsed)} of ${mib(m.heapTotal)} committed, ` +
      `external ${mib(m.external)} MiB (during the ${m.phase})`;
    console.log(`\nat the heap's high: ${show(heap.max)}`);
    console.log(`at external's high: ${show(heap.atMaxExternal)}`);
    for (const [phase, p] of Object.entries(profileAtPeak)) {
      console.log(`\nsampled objects not yet collected at the ${phase}' high: ${p.total} MiB`);
      console.log("by allocating function:\n  " + p.sites.join("\n  "));
      console.log("by the nearest frame in the project's code:\n  " + p.ours.join("\n  "));
    }
    inspector?.close();
  }
  if (traceGc) {
    // "[pid:0x…]   1234 ms: Mark-Compact 120.5 (140.2) -> 60.1 (80.3) MB, …"
    const gcs = server.lines.flatMap((l) => {
      const m =
        /(\d+) ms: (Scavenge|Mark-Compact|Incremental Mark-Compact|Minor Mark-Compact)\S* ([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB/
          .exec(l);
      return m ? [{ ms: +m[1], kind: m[2], before: +m[3], committed: +m[4], after: +m[5] }] : [];
    });
    const trace = Deno.env.get("GC_TRACE_FILE");
    if (trace) {
      await Deno.writeTextFile(trace, server.lines.join("\n"));
    }
    const kinds = new Map<string, number>();
    for (const g of gcs) kinds.set(g.kind, (kinds.get(g.kind) ?? 0) + 1);
    const maxCommitted = Math.max(...gcs.map((g) => g.committed));
    const maxBefore = Math.max(...gcs.map((g) => g.before));
    const fulls = gcs.filter((g) =>
      g.kind === "Mark-Compact" || g.kind === "Incremental Mark-Compact"
    );
    console.log(
      `\nGC: ${[...kinds].map(([k, n]) => `${n} ${k}`).join(", ")}; heap at most ${maxBefore} MB ` +
        `used before a collection, ${maxCommitted} MB committed; after each full GC: ` +
        fulls.map((g) => g.after).join(", ") + " MB",
    );
  }
  await server.stop();
} finally {
  await sql.end({ timeout: 5 });
  await db.stop();
}
