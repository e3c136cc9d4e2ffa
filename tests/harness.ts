/**
 * The one test harness: a fresh database per test, cloned from the migrated template that
 * `deno task test` prepares, and the app built on it (no server, no mocks).
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import type { Send } from "../testkit/fuzz.ts";
import { type AttackSetup, DIGEST_SQL, type IdpSetup } from "../testkit/attacks.ts";
import { createApp } from "../lib/http/app.ts";
import { type Config, parseConfig } from "../lib/runtime/config.ts";
import { connect, type Db, type Handle } from "../lib/db/pool.ts";
import { dbmate } from "../lib/db/migrate.ts";
import { type Logger, silentLogger } from "../lib/runtime/log.ts";
import { hashApiKey, newApiKey } from "../lib/auth/keys.ts";
import { type Clock, TOKEN_AUDIENCE, TOKEN_ISSUER } from "../lib/auth/tokens.ts";
import { createUser, type Role } from "../sql/users/queries.ts";

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

/**
 * A clone of the template for one test: one scripts/test.ts made ahead (`<prefix>ready_<n>`,
 * renamed to be this test's, so two tests never take the same), or a new one when none is ready.
 * Every name starts with TEST_CLONE_PREFIX, and scripts/test.ts drops what is left at the end.
 */
async function cloneTemplate(serverUrl: string, template: string): Promise<string> {
  const prefix = Deno.env.get("TEST_CLONE_PREFIX") ?? "test_";
  const name = `${prefix}${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      const [ready] = await admin.unsafe<{ name: string }[]>(
        `SELECT datname AS name FROM pg_database WHERE starts_with(datname, $1)
         ORDER BY random() LIMIT 1`,
        [`${prefix}ready_`],
      );
      if (!ready) break;
      try {
        await admin.unsafe(`ALTER DATABASE ${ready.name} RENAME TO ${name}`);
        return name;
      } catch {
        // Another test renamed it first: look again.
      }
    }
    await admin.unsafe(`CREATE DATABASE ${name} TEMPLATE ${template}`);
    return name;
  } finally {
    await admin.end();
  }
}

/** A database cloned from the template, for one test; `close` drops it. */
export async function createTestDb(poolMax = 10): Promise<TestDb> {
  const serverUrl = requiredEnv("TEST_DATABASE_URL");
  const template = requiredEnv("TEST_TEMPLATE_DB");
  const name = await cloneTemplate(serverUrl, template);
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

/** A fixed secret for tests: at least 32 bytes. */
export const TEST_JWT_SECRET = "test-secret-test-secret-test-secret-0123456789";

export function testConfig(overrides: Record<string, string> = {}): Config {
  return parseConfig({
    APP_ENV: "test",
    DATABASE_URL: "postgres://unused/unused",
    AUTH_JWT_SECRET: TEST_JWT_SECRET,
    ...overrides,
  });
}

export interface Res<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

/**
 * Sends a request through the app; `body` is sent as JSON unless it is a string. Headers given
 * here win over the client's own (an empty `authorization` removes the token).
 */
// deno-lint-ignore no-explicit-any
export type Requester = <T = any>(
  method: string,
  path: string,
  body?: unknown,
  headers?: Record<string, string>,
) => Promise<Res<T>>;

export interface TestUser {
  id: string;
  name: string;
  role: Role;
  apiKey: string;
  token: string;
  /** Requests with this user's token. */
  req: Requester;
}

export interface TestApp extends TestDb {
  app: ReturnType<typeof createApp>;
  /** The app's clock (tokens, the auth caches): the real time until the test moves it. */
  clock: TestClock;
  /** Requests as the harness's admin. */
  req: Requester;
  /** Requests with no credentials. */
  anon: Requester;
  /** Requests with any bearer token (or none). */
  client(token: string | null): Requester;
  admin: TestUser;
  /** A new user of that role, with an API key and a token. */
  user(role: Role, name?: string): Promise<TestUser>;
}

let userSeq = 0;

/** What createTestApp takes: configuration over testConfig's, the pool's size, a logger. */
export interface TestAppOptions {
  config?: Record<string, string>;
  poolMax?: number;
  log?: Logger;
}

/**
 * A clock for createApp's `now` (tokens and the auth caches) that a test moves forward instead of
 * waiting: the real time plus what `advance` added, or, once frozen, only what `advance` adds.
 */
export class TestClock {
  #frozenAt: number | undefined;
  #offsetMs = 0;
  readonly now: Clock = () => (this.#frozenAt ?? Date.now()) + this.#offsetMs;
  /** Seconds since the epoch, as JWT claims count them. */
  seconds(): number {
    return Math.floor(this.now() / 1000);
  }
  advance(ms: number): void {
    this.#offsetMs += ms;
  }
  /** Stops the clock at its current reading: from then on only `advance` moves it. */
  freeze(): void {
    this.#frozenAt ??= Date.now();
  }
}

export async function createTestApp(opts: TestAppOptions = {}): Promise<TestApp> {
  const tdb = await createTestDb(opts.poolMax);
  const config = testConfig(opts.config);
  const clock = new TestClock();
  const app = createApp({ db: tdb.db, config, log: opts.log ?? silentLogger, now: clock.now });

  const client = (token: string | null): Requester => async (method, path, body, headers) => {
    const h: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const init: RequestInit = { method, headers: h };
    if (body !== undefined) {
      const text = typeof body === "string" ? body : JSON.stringify(body);
      init.body = text;
      h["content-type"] = "application/json";
      // As an HTTP/1.1 client sends it (app.request has no wire to compute it on).
      h["content-length"] = String(new TextEncoder().encode(text).length);
    }
    Object.assign(h, headers);
    if (h.authorization === "") delete h.authorization;
    const res = await app.request(path, init);
    const text = await res.text();
    let parsed: unknown = text;
    if (res.headers.get("content-type")?.includes("application/json") && text) {
      parsed = JSON.parse(text);
    }
    // deno-lint-ignore no-explicit-any
    return { status: res.status, headers: res.headers, body: parsed as any };
  };

  /** Users are made directly in the database, then get a token the normal way. */
  const user = async (role: Role, name = `${role}-${++userSeq}`): Promise<TestUser> => {
    const apiKey = newApiKey();
    const u = await createUser(tdb.db, { name, role, api_key_hash: await hashApiKey(apiKey) });
    if (!u) throw new Error(`test user ${name} exists`);
    const res = await client(null)("POST", "/api/v1/auth/token", { api_key: apiKey });
    if (res.status !== 200) throw new Error(`token for ${name}: ${JSON.stringify(res.body)}`);
    const token = res.body.access_token as string;
    return { id: u.id, name, role, apiKey, token, req: client(token) };
  };

  const admin = await user("admin", "harness-admin");
  return { ...tdb, app, clock, req: admin.req, anon: client(null), client, admin, user };
}

/**
 * The OpenAPI document an app serves at /api/openapi.json, asked without credentials. It needs no
 * database (the app's pool points nowhere and never connects), so a test module can read it when
 * it loads and make each operation a top-level test of its own.
 */
// deno-lint-ignore no-explicit-any
export async function openApiDocument(): Promise<any> {
  const db = connect("postgres://unused@127.0.0.1:1/unused", {
    max: 1,
    connectTimeoutSeconds: 1,
    statementTimeoutMs: 0,
  });
  try {
    const app = createApp({ db, config: testConfig(), log: silentLogger });
    const res = await app.request("/api/openapi.json");
    if (res.status !== 200) throw new Error(`/api/openapi.json answered ${res.status}`);
    return await res.json();
  } finally {
    await db.end();
  }
}

/**
 * One top-level test on its own fresh app (and database), closed afterwards, so
 * `deno task test --filter "<name>"` runs it alone and no test sees another's rows.
 */
export function withApp(name: string, fn: (h: TestApp) => Promise<void>): void;
export function withApp(
  name: string,
  options: TestAppOptions & { ignore?: boolean },
  fn: (h: TestApp) => Promise<void>,
): void;
export function withApp(
  name: string,
  a: (TestAppOptions & { ignore?: boolean }) | ((h: TestApp) => Promise<void>),
  b?: (h: TestApp) => Promise<void>,
): void {
  const [options, fn] = typeof a === "function" ? [{}, a] : [a, b!];
  const { ignore, ...appOptions } = options as TestAppOptions & { ignore?: boolean };
  Deno.test({
    name,
    ignore,
    async fn() {
      const h = await createTestApp(appOptions);
      try {
        await fn(h);
      } finally {
        await h.close();
      }
    },
  });
}

/** One top-level test on its own fresh database (no app), dropped afterwards. */
export function withDb(name: string, fn: (h: TestDb) => Promise<void>): void;
export function withDb(
  name: string,
  options: { poolMax?: number },
  fn: (h: TestDb) => Promise<void>,
): void;
export function withDb(
  name: string,
  a: { poolMax?: number } | ((h: TestDb) => Promise<void>),
  b?: (h: TestDb) => Promise<void>,
): void {
  const [options, fn] = typeof a === "function" ? [{}, a] : [a, b!];
  Deno.test(name, async () => {
    const h = await createTestDb(options.poolMax);
    try {
      await fn(h);
    } finally {
      await h.close();
    }
  });
}

/**
 * Polls the feed at `url` from `after` until `n` items came or 5 s passed. A poll may come back
 * short for a moment: a transaction of another database that ends while the poll runs holds the
 * feed back for that poll (feed_horizon cannot tell where a finished transaction ran), and other
 * tests' databases are being cloned and dropped all the time.
 */
export async function pollFeed(
  u: { req: Requester },
  url: string,
  after: string | null,
  n: number,
) {
  // deno-lint-ignore no-explicit-any
  const items: any[] = [];
  let cursor = after;
  for (const deadline = Date.now() + 5000;;) {
    const sep = url.includes("?") ? "&" : "?";
    const page = await u.req("GET", `${url}${cursor ? `${sep}after=${cursor}` : ""}`);
    assert.equal(page.status, 200, JSON.stringify(page.body));
    items.push(...page.body.items);
    cursor = page.body.next_cursor;
    if (items.length >= n || Date.now() > deadline) return { items, cursor: cursor! };
    if (!page.body.items.length) await new Promise((r) => setTimeout(r, 20));
  }
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

/** An empty database (no migrations) on the test server, for migration tests; `close` drops it. */
export async function createEmptyDb(): Promise<{ url: string; close(): Promise<void> }> {
  const serverUrl = requiredEnv("TEST_DATABASE_URL");
  const name = `empty_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async close() {
      const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}

/**
 * Rolls the database at `url` back (dbmate rollback, one migration at a time) until migration
 * `version` is no longer applied: the schema as it was just before it, for a migration test.
 */
export async function rollBackBefore(db: Handle, url: string, version: string): Promise<void> {
  for (;;) {
    const [{ applied }] = await db.unsafe(
      "SELECT EXISTS (SELECT FROM schema_migrations WHERE version = $1) AS applied",
      [version],
    );
    if (!applied) return;
    const back = await dbmate(url, ["rollback"]);
    if (back.code !== 0) throw new Error(`dbmate rollback failed: ${back.stderr}`);
  }
}

/**
 * A caller that sees every dataset (an admin: may_see_dataset looks no further), for statement
 * tests that are not about membership. tests/membership_test.ts tests the rule itself.
 */
export const SEES_ALL = { caller_id: "0", caller_role: "admin" } as const;

/** The role of each of `ids`, as claimNextImages takes them: annotators all. */
export function annotators(ids: readonly string[]): "annotator"[] {
  return ids.map(() => "annotator");
}

/**
 * Ad-hoc SQL in tests (setting up states the API cannot reach, reading what it does not show):
 * positional `$n` parameters, run as given. Product code runs statements from sql/ only.
 */
export async function rawMany<R>(db: Handle, text: string, params: unknown[] = []): Promise<R[]> {
  return await db.unsafe<R[]>(text, params as never[]);
}

export async function rawOne<R>(
  db: Handle,
  text: string,
  params: unknown[] = [],
): Promise<R | null> {
  return (await rawMany<R>(db, text, params))[0] ?? null;
}

/** The rows the statement changed. */
export async function rawExec(db: Handle, text: string, params: unknown[] = []): Promise<number> {
  return (await db.unsafe(text, params as never[])).count;
}

/**
 * Sets a claim's expiry, and its lease's copy on the image row, to `ms` from now (negative: in
 * the past), instead of sleeping through a TTL. Returns the image rows changed (0: no claim).
 */
export function setClaimExpiry(db: Handle, claimId: string, ms: number): Promise<number> {
  return rawExec(
    db,
    `WITH c AS (
       UPDATE current_claims SET expires_at = now() + make_interval(secs => $2::float8 / 1000)
       WHERE claim_id = $1::bigint AND active
       RETURNING claim_id, image_id, expires_at
     )
     UPDATE images i
     SET leases = x.leases,
       full_until = lease_full_until(cardinality(i.annotators), live_leases(x.leases, NULL),
         i.annotations_per_image)
     FROM c,
       LATERAL (
         SELECT ARRAY(
           SELECT CASE WHEN (l).claim_id = c.claim_id
             THEN ROW(c.claim_id, (l).user_id, c.expires_at)::lease ELSE l END
           FROM images j, unnest(j.leases) l WHERE j.id = c.image_id
         ) AS leases
       ) x
     WHERE i.id = c.image_id`,
    [claimId, ms],
  );
}

/**
 * The stress suite's wire (testkit/fuzz.ts Send) to this in-process app, so its fuzzer and
 * attacks run inside `deno task test` too.
 */
export function inProcessSend(h: TestApp): Send {
  return async (req) => {
    const res = await h.app.request(req.url, {
      method: req.method,
      headers: req.headers,
      body: req.body as BodyInit | undefined,
    });
    return { status: res.status, headers: res.headers, text: await res.text() };
  };
}

/** What testkit/attacks.ts needs to attack this in-process app (its own tokens). */
export function attackSetup(h: TestApp, idp?: IdpSetup): AttackSetup {
  return {
    send: inProcessSend(h),
    jwtSecret: TEST_JWT_SECRET,
    issuer: TOKEN_ISSUER,
    audience: TOKEN_AUDIENCE,
    adminToken: h.admin.token,
    digest: async () => (await h.db.unsafe(DIGEST_SQL))[0].digest,
    ...(idp ? { idp } : {}),
  };
}
