/**
 * A small client for a server over HTTP (fetch): JSON in and out, and the setup every caller
 * needs (the admin's token, users, datasets). `call` never throws on a network error, so load
 * runs can count failed requests; the setup helpers throw on any unexpected answer.
 */
import { SERVER_ADMIN_KEY } from "./process.ts";

export interface Res {
  /** 0 when no response came back (connection refused or reset, timeout). */
  status: number;
  // deno-lint-ignore no-explicit-any
  body: any;
  headers: Headers;
  /** The network error when status is 0. */
  error?: string;
  ms: number;
}

export interface CallOptions {
  headers?: Record<string, string>;
  /** Sent as is instead of JSON.stringify(body). */
  raw?: BodyInit;
  timeoutMs?: number;
}

export async function call(
  base: string,
  token: string | null,
  method: string,
  path: string,
  body?: unknown,
  opts: CallOptions = {},
): Promise<Res> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  let payload: BodyInit | undefined = opts.raw;
  if (payload === undefined && body !== undefined) {
    payload = JSON.stringify(body);
    headers["content-type"] = "application/json";
  }
  Object.assign(headers, opts.headers);
  const started = performance.now();
  try {
    const res = await fetch(base + path, {
      method,
      headers,
      body: payload,
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
    const text = await res.text();
    let parsed: unknown = text;
    if (res.headers.get("content-type")?.includes("application/json") && text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    return {
      status: res.status,
      body: parsed,
      headers: res.headers,
      ms: performance.now() - started,
    };
  } catch (e) {
    return {
      status: 0,
      body: null,
      headers: new Headers(),
      error: (e as Error).name + ": " + (e as Error).message,
      ms: performance.now() - started,
    };
  }
}

/** True when `res` has the one error shape. */
export function hasErrorShape(res: { body: unknown; headers: Headers }): boolean {
  const b = res.body as { error?: { code?: unknown; message?: unknown } } | null;
  return !!res.headers.get("content-type")?.includes("application/json") &&
    typeof b?.error?.code === "string" && typeof b.error.message === "string";
}

/** Asserts a status, or throws with the response. */
export function expectStatus(res: Res, ...statuses: number[]): Res {
  if (!statuses.includes(res.status)) {
    throw new Error(
      `expected ${statuses.join("/")}, got ${res.status}: ${
        JSON.stringify(res.body ?? res.error).slice(0, 500)
      }`,
    );
  }
  return res;
}

/** An access token for an API key. */
export async function tokenFor(base: string, apiKey: string): Promise<string> {
  const res = await call(base, null, "POST", "/api/v1/auth/token", { api_key: apiKey });
  if (res.status !== 200) throw new Error(`token: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.access_token;
}

/** The admin's access token, from the API key every spawned server gets (productionEnv). */
export function adminToken(server: string | { url: string }): Promise<string> {
  return tokenFor(typeof server === "string" ? server : server.url, SERVER_ADMIN_KEY);
}

export interface User {
  id: string;
  name: string;
  role: string;
  apiKey: string;
  token: string;
}

/** A new user, with its API key and an access token. */
export async function createUser(
  base: string,
  admin: string,
  name: string,
  role: "admin" | "reviewer" | "annotator" | "machine",
): Promise<User> {
  const res = await call(base, admin, "POST", "/api/v1/users", { name, role });
  if (res.status !== 201) throw new Error(`createUser: ${res.status} ${JSON.stringify(res.body)}`);
  const apiKey = res.body.api_key;
  return { id: res.body.user.id, name, role, apiKey, token: await tokenFor(base, apiKey) };
}

/** `n` new users of `role`, named `${prefix}${i}` (i from 0), created concurrently, in order. */
export function createUsers(
  base: string | ((i: number) => string),
  admin: string,
  prefix: string,
  role: "admin" | "reviewer" | "annotator" | "machine",
  n: number,
): Promise<User[]> {
  const at = typeof base === "string" ? () => base : base;
  return Promise.all(
    Array.from({ length: n }, (_, i) => createUser(at(i), admin, `${prefix}${i}`, role)),
  );
}

/** `n` new annotators, named `${prefix}-1` … `${prefix}-n`: their access tokens, in order. */
export async function createAnnotators(
  base: string,
  admin: string,
  n: number,
  prefix: string,
): Promise<string[]> {
  const tokens: string[] = [];
  for (let i = 0; i < n; i++) {
    tokens.push((await createUser(base, admin, `${prefix}-${i + 1}`, "annotator")).token);
  }
  return tokens;
}

/**
 * A new dataset's id: `open` (every user works in it) unless `access` is `members`, when only the
 * users addMembers adds (and admins) see it.
 */
export async function createDataset(
  base: string,
  admin: string,
  name: string,
  labels = ["car", "person"],
  access: "open" | "members" = "open",
): Promise<string> {
  const res = await call(base, admin, "POST", "/api/v1/datasets", { name, labels, access });
  return expectStatus(res, 201).body.id;
}

/** Makes the users members of the dataset. */
export async function addMembers(
  base: string,
  admin: string,
  datasetId: string,
  userIds: readonly string[],
): Promise<void> {
  for (const id of userIds) {
    expectStatus(
      await call(base, admin, "PUT", `/api/v1/datasets/${datasetId}/members/${id}`),
      204,
    );
  }
}
