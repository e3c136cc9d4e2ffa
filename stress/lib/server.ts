/**
 * Real server processes, started the way production starts them: `main.ts` with the permission
 * flags of `deno task start` (not --allow-all), an environment made only of what the scenario
 * passes (no inherited variables beyond what deno needs to find its cache), and an empty
 * temporary working directory (no developer `.env` is read). In production mode on a fixed
 * port; waited for (GET /healthz), killed with any signal and started again on the same port.
 */
import { freePort } from "../../lib/runtime/embedded_pg.ts";
import { baseEnv, ROOT_DIR as ROOT, startTaskFlags } from "../../tests/server_process.ts";

export const ADMIN_API_KEY = "ak_stress_admin_key_0123456789abcdefghijklmnop";
export const JWT_SECRET = "stress-jwt-secret-0123456789-abcdefghijklmnop";

export interface ServerOptions {
  databaseUrl: string;
  /** Extra environment (DB_POOL_MAX, BODY_LIMIT_BYTES, ...). */
  env?: Record<string, string>;
  port?: number;
}

export interface Server {
  url: string;
  port: number;
  pid: number;
  /** Lines the process printed (stdout and stderr), the last 2,000. */
  lines: string[];
  /** Log lines at level error (an unexpected 5xx, or a start-up failure). */
  errors(): Record<string, unknown>[];
  /** Log lines at level warn (expected 503s: timeouts, an unavailable database). */
  warnings(): Record<string, unknown>[];
  exited: Promise<number>;
  kill(signal: Deno.Signal): void;
  /** Resident memory of the process, in MiB (Linux /proc). */
  rssMiB(): number;
}

async function collect(stream: ReadableStream<Uint8Array>, sink: string[]): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    sink.push(...parts);
    if (sink.length > 4000) sink.splice(0, sink.length - 2000);
  }
  if (rest) sink.push(rest);
}

/** The `deno` arguments that run the server as `deno task start` does. */
export function serverArgs(): string[] {
  return ["run", `--config=${ROOT}/deno.json`, ...startTaskFlags(), `${ROOT}/main.ts`];
}

function logged(lines: string[], level: string): Record<string, unknown>[] {
  return lines.flatMap((l) => {
    try {
      const v = JSON.parse(l);
      return v?.level === level ? [v] : [];
    } catch {
      return [];
    }
  });
}

/** Starts a server and waits until /healthz answers (at most `timeoutMs`). */
export async function startServer(opts: ServerOptions, timeoutMs = 30_000): Promise<Server> {
  const port = opts.port ?? freePort();
  const cwd = await Deno.makeTempDir({ prefix: "annotation-stress-cwd-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: serverArgs(),
    cwd,
    clearEnv: true,
    env: {
      ...baseEnv(),
      APP_ENV: "production",
      HOST: "127.0.0.1",
      PORT: String(port),
      DATABASE_URL: opts.databaseUrl,
      AUTH_JWT_SECRET: JWT_SECRET,
      ADMIN_API_KEY,
      LOG_LEVEL: "warn",
      NO_COLOR: "1",
      ...opts.env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const done = Promise.all([collect(child.stdout, lines), collect(child.stderr, lines)]);
  let code: number | undefined;
  const exited = child.status.then(async (s) => {
    await done;
    await Deno.remove(cwd, { recursive: true }).catch(() => {});
    code = s.code;
    return s.code;
  });
  const url = `http://127.0.0.1:${port}`;
  const server: Server = {
    url,
    port,
    pid: child.pid,
    lines,
    errors: () => logged(lines, "error"),
    warnings: () => logged(lines, "warn"),
    exited,
    kill(signal) {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    },
    rssMiB() {
      try {
        const status = Deno.readTextFileSync(`/proc/${child.pid}/status`);
        const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
        return Math.round(kb / 1024);
      } catch {
        return 0;
      }
    },
  };
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (code !== undefined) {
      throw new Error(`server exited with ${code} before serving:\n${lines.join("\n")}`);
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      if (res.status === 200) return server;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  server.kill("SIGKILL");
  throw new Error(`server did not answer /healthz within ${timeoutMs} ms:\n${lines.join("\n")}`);
}

/** SIGKILL and wait for the exit. */
export async function killHard(server: Server): Promise<void> {
  server.kill("SIGKILL");
  await server.exited;
}
