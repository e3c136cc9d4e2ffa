/**
 * `deno task bench:auth [--seconds N] [--connections N]`: what token verification costs per
 * request. Runs the real server as its own process (APP_ENV=production, on a throwaway embedded
 * PostgreSQL) and drives it over HTTP with N concurrent keep-alive loops: first `getHealth` (no
 * auth, no database), then `getMe` with a createToken-issued token (HS256 verification plus the
 * cached user lookup). The difference in time per request is the authentication cost.
 */
import { newApiKey, newJwtSecret } from "../lib/auth/keys.ts";
import { connect } from "../lib/db/pool.ts";
import { freePort, startEmbeddedPostgres } from "../lib/runtime/embedded_pg.ts";
import { migrate } from "../lib/db/migrate.ts";

function arg(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  const value = i >= 0 ? Number(Deno.args[i + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name}: a positive number`);
  return value;
}

const seconds = arg("seconds", 5);
const connections = arg("connections", 32);

async function load(url: string, headers: HeadersInit): Promise<{ rps: number; p99: number }> {
  const latencies: number[] = [];
  const until = performance.now() + seconds * 1000;
  await Promise.all(Array.from({ length: connections }, async () => {
    while (performance.now() < until) {
      const started = performance.now();
      const res = await fetch(url, { headers });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${url}: HTTP ${res.status}`);
      latencies.push(performance.now() - started);
    }
  }));
  latencies.sort((a, b) => a - b);
  return {
    rps: Math.round(latencies.length / seconds),
    p99: Math.round(latencies[Math.ceil(latencies.length * 0.99) - 1] * 100) / 100,
  };
}

const pg = await startEmbeddedPostgres({
  dir: `.data/bench-auth-${Deno.pid}`,
  port: freePort(),
  database: "bench",
  persistent: false,
});
const port = freePort();
let server: Deno.ChildProcess | undefined;
try {
  const db = connect(pg.url, { max: 2, connectTimeoutSeconds: 10, statementTimeoutMs: 0 });
  await migrate(db, pg.url);
  await db.end();
  const apiKey = newApiKey();
  server = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "main.ts"],
    env: {
      APP_ENV: "production",
      DATABASE_URL: pg.url,
      PORT: String(port),
      HOST: "127.0.0.1",
      AUTH_JWT_SECRET: newJwtSecret(),
      ADMIN_API_KEY: apiKey,
      LOG_LEVEL: "warn",
    },
    stdout: "null",
  }).spawn();
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0;; i++) {
    try {
      if ((await fetch(`${base}/readyz`).then((r) => (r.body?.cancel(), r.status))) === 200) break;
    } catch { /* not listening yet */ }
    if (i > 300) throw new Error("the server did not become ready");
    await new Promise((r) => setTimeout(r, 100));
  }
  const token = (await (await fetch(`${base}/api/v1/auth/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ api_key: apiKey }),
  })).json()).access_token;
  const me = { authorization: `Bearer ${token}` };

  await load(`${base}/healthz`, {}); // warm-up
  await load(`${base}/api/v1/me`, me);
  const health = await load(`${base}/healthz`, {});
  const getMe = await load(`${base}/api/v1/me`, me);
  const addedUs = Math.round((1e6 / getMe.rps - 1e6 / health.rps) * 10) / 10;
  console.log(`${connections} connections, ${seconds} s each, server and client on one machine`);
  console.table({
    getHealth: { "req/s": health.rps, "p99 ms": health.p99 },
    getMe: { "req/s": getMe.rps, "p99 ms": getMe.p99 },
  });
  console.log(
    `getMe / getHealth: ${(getMe.rps / health.rps).toFixed(2)}; ` +
      `each getMe costs ${addedUs} µs more machine time than a getHealth`,
  );
} finally {
  if (server) {
    server.kill("SIGTERM");
    await server.status;
  }
  await pg.stop();
}
