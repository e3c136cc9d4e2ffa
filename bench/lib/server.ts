/**
 * The server under test as its own process, started as production starts it (`main.ts` with
 * the start task's flags, APP_ENV=production, migrations already applied), so its memory can be
 * read from /proc and the load generators never share its thread.
 */
import { freePort } from "../../lib/runtime/embedded_pg.ts";
import { sleep } from "./stats.ts";
import { startTaskFlags } from "../../tests/server_process.ts";

export const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname)
  .replace(/\/$/, "");

export const ADMIN_API_KEY = "ak_bench_admin_key_0123456789abcdefghijklmnop";
const JWT_SECRET = "bench-jwt-secret-0123456789-abcdefghijklmnopqrst";

export interface Server {
  url: string;
  pid: number;
  /** The last lines it printed (its log is at warn level). */
  lines: string[];
  /** Peak resident memory since start (or the last resetPeak), MiB; VmHWM in /proc. */
  peakRssMiB(): number;
  /** Current resident memory, MiB. */
  rssMiB(): number;
  /** CPU time (user + system) the process has used so far, seconds. */
  cpuSeconds(): number;
  stop(): Promise<number>;
}

function procKiB(pid: number, field: string): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

function statFields(pid: number | "self"): string[] | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The fields after the command name (which may hold spaces and parentheses), from state on.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** User + system CPU seconds of a process (Linux /proc/<pid>/stat; "self" for this one). */
export function cpuSeconds(pid: number | "self"): number {
  const f = statFields(pid);
  return f ? (Number(f[11]) + Number(f[12])) / 100 : NaN;
}

/** CPU seconds of a process's children that have ended and been waited for. */
export function childrenCpuSeconds(pid: number | "self"): number {
  const f = statFields(pid);
  return f ? (Number(f[13]) + Number(f[14])) / 100 : NaN;
}

/**
 * CPU seconds used so far by a PostgreSQL cluster: its postmaster, its reaped children
 * (connections that ended) and its live children (backends, checkpointer, WAL writer, ...).
 * NaN when the postmaster is not a process on this machine.
 */
export function clusterCpuSeconds(postmasterPid: number): number {
  const f = statFields(postmasterPid);
  if (!f) return NaN;
  let ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const c = statFields(Number(e.name));
    if (c && Number(c[1]) === postmasterPid) ticks += Number(c[11]) + Number(c[12]);
  }
  return ticks / 100;
}

async function collect(stream: ReadableStream<Uint8Array>, sink: string[]): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    sink.push(...parts);
    if (sink.length > 400) sink.splice(0, sink.length - 200);
  }
  if (rest) sink.push(rest);
}

/** Starts `main.ts` on a free loopback port and waits until /healthz answers 200. */
export async function startServer(
  databaseUrl: string,
  extraEnv: Record<string, string> = {},
  /** Extra `deno run` flags, e.g. `--inspect=...` (bench/experiments/profile_server.ts). */
  extraFlags: string[] = [],
): Promise<Server> {
  const port = freePort();
  const env: Record<string, string> = { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" };
  for (const k of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"]) {
    const v = Deno.env.get(k);
    if (v) env[k] = v;
  }
  // An empty working directory: no developer's .env is read.
  const cwd = await Deno.makeTempDir({ prefix: "annotation-bench-" });
  const child = new Deno.Command(Deno.execPath(), {
    // The permissions and V8 flags of `deno task start`, as production runs it.
    args: [
      "run",
      ...startTaskFlags(),
      ...extraFlags,
      `--config=${ROOT}/deno.json`,
      `${ROOT}/main.ts`,
    ],
    cwd,
    clearEnv: true,
    env: {
      ...env,
      APP_ENV: "production",
      HOST: "127.0.0.1",
      PORT: String(port),
      DATABASE_URL: databaseUrl,
      AUTH_JWT_SECRET: JWT_SECRET,
      ADMIN_API_KEY,
      LOG_LEVEL: "warn",
      ...extraEnv,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const output = Promise.all([collect(child.stdout, lines), collect(child.stderr, lines)]);
  let code: number | undefined;
  const exited = child.status.then(async (s) => {
    await output;
    code = s.code;
    await Deno.remove(cwd, { recursive: true }).catch(() => {});
    return s.code;
  });
  const url = `http://127.0.0.1:${port}`;
  const server: Server = {
    url,
    pid: child.pid,
    lines,
    peakRssMiB: () => procKiB(child.pid, "VmHWM") / 1024,
    rssMiB: () => procKiB(child.pid, "VmRSS") / 1024,
    cpuSeconds: () => cpuSeconds(child.pid),
    async stop() {
      if (code === undefined) {
        try {
          child.kill("SIGTERM");
        } catch {
          // already gone
        }
      }
      return await exited;
    },
  };
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (code !== undefined) {
      throw new Error(`the server exited with ${code} before serving:\n${lines.join("\n")}`);
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      if (res.status === 200) return server;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  await server.stop();
  throw new Error(`the server did not answer /healthz within 60 s:\n${lines.join("\n")}`);
}
