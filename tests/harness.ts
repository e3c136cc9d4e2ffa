/**
 * The one test harness: a fresh database per test file, cloned from the migrated template that
 * `deno task test` prepares, and the app built on it (no server, no mocks).
 */
import postgres from "postgres";
import { createApp } from "../lib/app.ts";
import { type Config, parseConfig } from "../lib/config.ts";
import { connect, type Db } from "../lib/db.ts";
import { silentLogger } from "../lib/log.ts";

export interface TestDb {
  db: Db;
  /** The URL of this file's own database. */
  url: string;
  close(): Promise<void>;
}

function requiredEnv(name: string): string {
  const value = Deno.env.get(name);
  if (!value) {
    throw new Error(`${name} is not set: run the tests with \`deno task test\`, which sets it`);
  }
  return value;
}

/** Creates a database from the template; `close` drops it. */
export async function createTestDb(poolMax = 10): Promise<TestDb> {
  const serverUrl = requiredEnv("TEST_DATABASE_URL");
  const template = requiredEnv("TEST_TEMPLATE_DB");
  const name = `test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE DATABASE ${name} TEMPLATE ${template}`);
  } finally {
    await admin.end();
  }
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  const url = u.toString();
  const db = connect(url, { max: poolMax, connectTimeoutSeconds: 10, statementTimeoutMs: 60_000 });
  return {
    db,
    url,
    async close() {
      await db.end({ timeout: 5 });
      const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}

export function testConfig(overrides: Record<string, string> = {}): Config {
  return parseConfig({ APP_ENV: "test", DATABASE_URL: "postgres://unused/unused", ...overrides });
}

export interface Res<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

export interface TestApp extends TestDb {
  app: ReturnType<typeof createApp>;
  /** Sends a request through the app; `body` is sent as JSON unless it is a string. */
  // deno-lint-ignore no-explicit-any
  req<T = any>(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<Res<T>>;
}

export async function createTestApp(
  opts: { config?: Record<string, string>; poolMax?: number } = {},
): Promise<TestApp> {
  const tdb = await createTestDb(opts.poolMax);
  const app = createApp({ db: tdb.db, config: testConfig(opts.config), log: silentLogger });
  return {
    ...tdb,
    app,
    async req(method, path, body, headers = {}) {
      const init: RequestInit = { method, headers: { ...headers } };
      if (body !== undefined) {
        init.body = typeof body === "string" ? body : JSON.stringify(body);
        (init.headers as Record<string, string>)["content-type"] ??= "application/json";
      }
      const res = await app.request(path, init);
      const text = await res.text();
      let parsed: unknown = text;
      if (res.headers.get("content-type")?.includes("application/json") && text) {
        parsed = JSON.parse(text);
      }
      // deno-lint-ignore no-explicit-any
      return { status: res.status, headers: res.headers, body: parsed as any };
    },
  };
}

/** Asserts the one error shape, and optionally the status and code. */
export function assertError(res: Res, status: number, code?: string): void {
  const body = res.body as { error?: { code?: unknown; message?: unknown } };
  if (res.status !== status) {
    throw new Error(`expected status ${status}, got ${res.status}: ${JSON.stringify(res.body)}`);
  }
  if (typeof body?.error?.code !== "string" || typeof body.error.message !== "string") {
    throw new Error(`not the error shape: ${JSON.stringify(res.body)}`);
  }
  if (code !== undefined && body.error.code !== code) {
    throw new Error(`expected error code ${code}, got ${body.error.code}: ${body.error.message}`);
  }
}
