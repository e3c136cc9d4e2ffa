/**
 * The real server as a separate process, started the way production starts it: `main.ts` with
 * the permissions of `deno task start`, an environment made only of what the test passes (no
 * inherited DATABASE_URL, no `.env`: the working directory is an empty temporary folder).
 */

const ROOT = new URL("../", import.meta.url);
export const ROOT_DIR = decodeURIComponent(ROOT.pathname).replace(/\/$/, "");

/** A fixed admin key for spawned servers (ADMIN_API_KEY needs 32 characters). */
export const SERVER_ADMIN_KEY = "ak_server_process_admin_key_0123456789abcdef";
export const SERVER_JWT_SECRET = "server-process-jwt-secret-0123456789-abcdef";

/**
 * `deno task start` without its `APP_ENV=production` prefix, `deno run` and the entry point: its
 * permission flags. (Spawned servers get APP_ENV from the test's own environment.)
 */
export function startTaskFlags(): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT_DIR}/deno.json`));
  const words = String(config.tasks.start).split(/\s+/);
  if (words[0] === "APP_ENV=production") words.shift();
  if (words[0] !== "deno" || words[1] !== "run" || words.at(-1) !== "main.ts") {
    throw new Error(`unexpected start task: ${config.tasks.start}`);
  }
  return words.slice(2, -1);
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

/**
 * What a child process needs from this one to find deno's caches; nothing else. Also used by
 * stress/lib/server.ts, which starts its servers the same way.
 */
export function baseEnv(): Record<string, string> {
  const keep = ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"];
  const env: Record<string, string> = { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" };
  for (const k of keep) {
    const v = Deno.env.get(k);
    if (v) env[k] = v;
  }
  return env;
}

export interface ServerProcess {
  /** `http://127.0.0.1:<port>` once listening. */
  url: string;
  port: number;
  pid: number;
  /** Everything printed so far, stdout and stderr, in order. */
  output(): string;
  /** The JSON log lines printed so far. */
  logs(): Record<string, unknown>[];
  kill(signal: Deno.Signal): void;
  /** Resolves with the exit code. */
  exited: Promise<number>;
}

/** Reads a stream line by line into `sink` until it ends. */
async function collect(stream: ReadableStream<Uint8Array>, sink: string[]): Promise<void> {
  const decoder = new TextDecoderStream();
  let rest = "";
  for await (const chunk of stream.pipeThrough(decoder)) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    sink.push(...parts);
  }
  if (rest) sink.push(rest);
}

export interface RunOptions {
  /** The script under the project root and its arguments; default the server. */
  args?: string[];
  /** Permission flags; default those of `deno task start`. */
  permissions?: string[];
}

/** Spawns the process with exactly `env` (plus what deno needs to find its cache). */
export function spawnProcess(env: Record<string, string>, opts: RunOptions = {}) {
  const cwd = Deno.makeTempDirSync({ prefix: "annotation-server-cwd-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--config=${ROOT_DIR}/deno.json`,
      ...(opts.permissions ?? startTaskFlags()),
      ...(opts.args ?? ["main.ts"]).map((a, i) => i === 0 ? `${ROOT_DIR}/${a}` : a),
    ],
    cwd,
    clearEnv: true,
    env: { ...baseEnv(), ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const done = Promise.all([collect(child.stdout, lines), collect(child.stderr, lines)]);
  const exited = child.status.then(async (s) => {
    await done;
    await Deno.remove(cwd, { recursive: true }).catch(() => {});
    return s.code;
  });
  return { child, lines, exited };
}

/** Runs a script to completion: exit code and output. */
export async function runScript(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; output: string }> {
  const { lines, exited } = spawnProcess(env, { args, permissions: ["--allow-all"] });
  const code = await exited;
  return { code, output: lines.join("\n") };
}

function parseLogs(lines: string[]): Record<string, unknown>[] {
  return lines.flatMap((l) => {
    try {
      const v = JSON.parse(l);
      return v && typeof v === "object" ? [v] : [];
    } catch {
      return [];
    }
  });
}

/**
 * Starts the server on a free port (PORT=0) and waits for its "listening" line. Throws with
 * the output when it exits first or takes longer than `timeoutMs`.
 */
export async function startServer(
  env: Record<string, string>,
  timeoutMs = 30_000,
): Promise<ServerProcess> {
  const { child, lines, exited } = spawnProcess({
    HOST: "127.0.0.1",
    PORT: "0",
    ...env,
  });
  let exitCode: number | undefined;
  exited.then((c) => exitCode = c);
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const listening = parseLogs(lines).find((l) => l.msg === "listening");
    if (listening) {
      const url = String(listening.url).replace("localhost", "127.0.0.1");
      return {
        url,
        port: Number(new URL(url).port),
        pid: child.pid,
        output: () => lines.join("\n"),
        logs: () => parseLogs(lines),
        kill: (signal) => {
          try {
            child.kill(signal);
          } catch {
            // Already exited.
          }
        },
        exited,
      };
    }
    if (exitCode !== undefined || Date.now() > deadline) {
      if (exitCode === undefined) child.kill("SIGKILL");
      const code = await exited;
      throw new ServerExited(code, lines.join("\n"));
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The server exited (or hung) before listening. */
export class ServerExited extends Error {
  constructor(readonly code: number, readonly output: string) {
    super(`the server exited with ${code} before listening:\n${output}`);
  }
}

/** Runs the server until it listens or exits; for start-ups that are meant to fail. */
export async function expectStartFailure(
  env: Record<string, string>,
): Promise<{ code: number; output: string }> {
  try {
    const server = await startServer(env);
    server.kill("SIGKILL");
    await server.exited;
    throw new Error(`the server started, but was expected to fail:\n${server.output()}`);
  } catch (e) {
    if (e instanceof ServerExited) return { code: e.code, output: e.output };
    throw e;
  }
}

/** An exit code, or an error when the process is still running after `ms`. */
export async function exitWithin(server: ServerProcess, ms: number): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      server.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          server.kill("SIGKILL");
          reject(new Error(`still running ${ms} ms later:\n${server.output()}`));
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** An API token for the spawned server's admin (ADMIN_API_KEY). */
export async function adminToken(server: ServerProcess): Promise<string> {
  const res = await fetch(`${server.url}/api/v1/auth/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ api_key: SERVER_ADMIN_KEY }),
  });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`token: ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

/**
 * A login role with a password full of URL-special characters, allowed everything in the
 * database at `url`; `drop` removes it (after the database is gone).
 */
export async function createLoginRole(
  url: string,
  /** Where to drop it from: a database that outlives `url`'s. */
  adminUrl: string,
): Promise<{ user: string; password: string; drop(): Promise<void> }> {
  const { default: postgres } = await import("postgres");
  const user = `app_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const password = `p@ss:w/rd?#%&= ${crypto.randomUUID().slice(0, 8)}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE ROLE ${user} LOGIN PASSWORD '${password.replaceAll("'", "''")}'`);
    await admin.unsafe(`GRANT USAGE, CREATE ON SCHEMA public TO ${user}`);
    await admin.unsafe(`GRANT ALL ON ALL TABLES IN SCHEMA public TO ${user}`);
    await admin.unsafe(`GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO ${user}`);
  } finally {
    await admin.end();
  }
  return {
    user,
    password,
    async drop() {
      const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`DROP ROLE IF EXISTS ${user}`);
      } finally {
        await admin.end();
      }
    },
  };
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
