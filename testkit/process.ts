/**
 * The real server (or a script) as a separate process, started the way production starts it:
 * `main.ts` with the permissions of `deno task start`, an environment made only of what the
 * caller passes (no inherited DATABASE_URL, no `.env`: the working directory is an empty
 * temporary folder). Tests, the stress suite and the bench all start their servers here.
 */
import { freePort } from "../lib/runtime/embedded_pg.ts";
import { cpuSeconds, peakRssMiB, rssMiB } from "./proc.ts";
import { sleep } from "./time.ts";

export const ROOT_DIR = decodeURIComponent(new URL("../", import.meta.url).pathname)
  .replace(/\/$/, "");

/** A fixed admin key for spawned servers (ADMIN_API_KEY needs 32 characters). */
export const SERVER_ADMIN_KEY = "ak_server_process_admin_key_0123456789abcdef";
export const SERVER_JWT_SECRET = "server-process-jwt-secret-0123456789-abcdef";

/**
 * A `deno run … main.ts` task of deno.json without its `APP_ENV=…` prefix, `deno run` and the
 * entry point: its permission and V8 flags. (Spawned servers get APP_ENV from their environment.)
 */
function taskFlags(task: "start" | "dev", root: string): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${root}/deno.json`));
  const words = String(config.tasks[task]).split(/\s+/);
  if (/^APP_ENV=/.test(words[0])) words.shift();
  if (words[0] !== "deno" || words[1] !== "run" || words.at(-1) !== "main.ts") {
    throw new Error(`unexpected ${task} task: ${config.tasks[task]}`);
  }
  return words.slice(2, -1);
}

/** `deno task start`'s flags (taskFlags). */
export function startTaskFlags(root = ROOT_DIR): string[] {
  return taskFlags("start", root);
}

/** `deno task dev`'s flags (taskFlags). */
export function devTaskFlags(root = ROOT_DIR): string[] {
  return taskFlags("dev", root);
}

export interface RunOptions {
  /** The script under the project root and its arguments; default the server. */
  args?: string[];
  /** Permission flags; default those of `deno task start`. */
  permissions?: string[];
  /** More `deno run` flags, e.g. `--inspect=127.0.0.1:9229`. */
  flags?: string[];
  /** Keep only the last this many lines of output (long load runs); default all of them. */
  keepLines?: number;
  /**
   * The checkout to run (its deno.json, node_modules and script); default this one. Another
   * commit's worktree, for comparing two versions (bench/experiments/cycle_ab.ts --a-root).
   */
  root?: string;
  /** The working directory, left in place; default a new empty one, removed at the exit. */
  cwd?: string;
}

/** The `deno` arguments that run a script under the project root as `deno task start` does. */
export function serverArgs(opts: RunOptions = {}): string[] {
  const [script, ...rest] = opts.args ?? ["main.ts"];
  const root = opts.root ?? ROOT_DIR;
  return [
    "run",
    `--config=${root}/deno.json`,
    ...(opts.permissions ?? startTaskFlags(root)),
    ...(opts.flags ?? []),
    `${root}/${script}`,
    ...rest,
  ];
}

/** The `DB_*` variables for a postgres:// URL (the form the tests get from the harness). */
export function dbEnv(url: string): Record<string, string> {
  const u = new URL(url);
  return {
    DB_USER: decodeURIComponent(u.username),
    DB_PASSWORD: decodeURIComponent(u.password),
    DB_HOST: u.hostname,
    DB_PORT: u.port || "5432",
    DB_NAME: decodeURIComponent(u.pathname.slice(1)),
  };
}

/** What a child process needs from this one to find deno's caches; nothing else. */
export function baseEnv(): Record<string, string> {
  const keep = ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"];
  const env: Record<string, string> = { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" };
  for (const k of keep) {
    const v = Deno.env.get(k);
    if (v) env[k] = v;
  }
  return env;
}

/** The production settings every spawned server gets, with the database left to the caller. */
export function productionEnv(): Record<string, string> {
  return {
    APP_ENV: "production",
    AUTH_JWT_SECRET: SERVER_JWT_SECRET,
    ADMIN_API_KEY: SERVER_ADMIN_KEY,
    LOG_LEVEL: "info",
  };
}

export interface ChildProcess {
  pid: number;
  /** What it printed, stdout and stderr, in order (the last `keepLines` when set). */
  lines: string[];
  output(): string;
  /** The JSON log lines printed so far; only those of `level` when given. */
  logs(level?: string): Record<string, unknown>[];
  kill(signal: Deno.Signal): void;
  /** Resolves with the exit code, once the output is read and the working directory removed. */
  exited: Promise<number>;
  /** SIGTERM unless it has exited, then its exit code. */
  stop(): Promise<number>;
  /** Resident memory now and at its peak (VmHWM), MiB; NaN once it has exited. */
  rssMiB(): number;
  peakRssMiB(): number;
  /** CPU time (user + system) it has used so far, seconds. */
  cpuSeconds(): number;
}

/** Reads a stream line by line into `sink` until it ends, keeping the last `keep` lines. */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  sink: string[],
  keep = Infinity,
): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    sink.push(...parts);
    // Trimmed in steps of `keep` lines, not on every line.
    if (sink.length > 2 * keep) sink.splice(0, sink.length - keep);
  }
  if (rest) sink.push(rest);
}

function parseLogs(lines: string[], level?: string): Record<string, unknown>[] {
  return lines.flatMap((l) => {
    try {
      const v = JSON.parse(l);
      return v && typeof v === "object" && (level === undefined || v.level === level) ? [v] : [];
    } catch {
      return [];
    }
  });
}

/** Spawns a script with exactly `env` (plus what deno needs to find its cache). */
export function spawnProcess(env: Record<string, string>, opts: RunOptions = {}): ChildProcess {
  const cwd = opts.cwd ?? Deno.makeTempDirSync({ prefix: "annotation-server-cwd-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: serverArgs(opts),
    cwd,
    clearEnv: true,
    env: { ...baseEnv(), ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const keep = opts.keepLines ?? Infinity;
  const done = Promise.all([
    readLines(child.stdout, lines, keep),
    readLines(child.stderr, lines, keep),
  ]);
  let code: number | undefined;
  const exited = child.status.then(async (s) => {
    await done;
    if (!opts.cwd) await Deno.remove(cwd, { recursive: true }).catch(() => {});
    code = s.code;
    return s.code;
  });
  const kill = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch {
      // Already exited.
    }
  };
  return {
    pid: child.pid,
    lines,
    output: () => lines.join("\n"),
    logs: (level) => parseLogs(lines, level),
    kill,
    exited,
    stop() {
      if (code === undefined) kill("SIGTERM");
      return exited;
    },
    rssMiB: () => rssMiB(child.pid),
    peakRssMiB: () => peakRssMiB(child.pid),
    cpuSeconds: () => cpuSeconds(child.pid),
  };
}

/** Runs a script to completion: exit code and output. */
export async function runScript(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; output: string }> {
  const script = spawnProcess(env, { args, permissions: ["--allow-all"] });
  const code = await script.exited;
  return { code, output: script.output() };
}

export interface ServerProcess extends ChildProcess {
  /** `http://127.0.0.1:<port>` once listening. */
  url: string;
  port: number;
}

export interface StartOptions extends Omit<RunOptions, "args" | "permissions"> {
  /**
   * The port to listen on. Default 0 (the system picks one), and the server is ready when it
   * logs "listening". A fixed port is also polled with GET /healthz, so a server logging at
   * warn (which hides that line) is found ready too.
   */
  port?: number;
  /** How long it may take to listen; default 30 s. */
  timeoutMs?: number;
}

/**
 * Starts the server on 127.0.0.1 and waits until it listens. Throws with the output when it
 * exits first or takes longer than `timeoutMs` (then it is killed).
 */
export async function startServer(
  env: Record<string, string>,
  opts: StartOptions = {},
): Promise<ServerProcess> {
  const port = opts.port ?? 0;
  const child = spawnProcess({ HOST: "127.0.0.1", PORT: String(port), ...env }, opts);
  let exitCode: number | undefined;
  child.exited.then((c) => exitCode = c);
  const ready = (url: string): ServerProcess => ({
    ...child,
    url,
    port: Number(new URL(url).port),
  });
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const listening = child.logs().find((l) => l.msg === "listening");
    if (listening) return ready(String(listening.url).replace("localhost", "127.0.0.1"));
    if (port !== 0 && exitCode === undefined) {
      const url = `http://127.0.0.1:${port}`;
      try {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
        await res.body?.cancel();
        if (res.status === 200) return ready(url);
      } catch {
        // Not listening yet.
      }
    }
    if (exitCode !== undefined || Date.now() > deadline) {
      if (exitCode === undefined) child.kill("SIGKILL");
      const code = await child.exited;
      throw new ServerExited(code, child.output(), exitCode === undefined ? timeoutMs : undefined);
    }
    await sleep(50);
  }
}

/** The server exited (or hung, and was killed) before listening. */
export class ServerExited extends Error {
  constructor(readonly code: number, readonly output: string, timeoutMs?: number) {
    super(
      timeoutMs === undefined
        ? `the server exited with ${code} before listening:\n${output}`
        : `the server did not listen within ${timeoutMs} ms:\n${output}`,
    );
  }
}

/**
 * A server for a load run (the stress suite, the bench): production settings, a log at warn (a
 * line per request would cost the run CPU and memory), the last 2,000 lines kept, on a port of
 * its own that a scenario can start it again on.
 */
export function startLoadServer(
  opts: { databaseUrl: string; env?: Record<string, string> } & StartOptions,
): Promise<ServerProcess> {
  return startServer(
    { ...productionEnv(), DATABASE_URL: opts.databaseUrl, LOG_LEVEL: "warn", ...opts.env },
    {
      port: opts.port ?? freePort(),
      flags: opts.flags,
      keepLines: opts.keepLines ?? 2_000,
      timeoutMs: opts.timeoutMs,
      root: opts.root,
    },
  );
}

/** Runs the server until it listens or exits; for start-ups that are meant to fail. */
export async function expectStartFailure(
  env: Record<string, string>,
): Promise<{ code: number; output: string }> {
  try {
    const server = await startServer(env);
    await killHard(server);
    throw new Error(`the server started, but was expected to fail:\n${server.output()}`);
  } catch (e) {
    if (e instanceof ServerExited) return { code: e.code, output: e.output };
    throw e;
  }
}

/** SIGKILL, and the exit. */
export async function killHard(child: ChildProcess): Promise<void> {
  child.kill("SIGKILL");
  await child.exited;
}

/** An exit code, or an error (and SIGKILL) when the process is still running after `ms`. */
export async function exitWithin(child: ChildProcess, ms: number): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      child.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill("SIGKILL");
          reject(new Error(`still running ${ms} ms later:\n${child.output()}`));
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
