import { ADMIN_API_KEY } from "./server.ts";

/** One JSON call to the server under test (setup only: users, tokens, datasets). */
export async function api<T>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
): Promise<T> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text}`);
  return (text ? JSON.parse(text) : null) as T;
}

/** An admin's access token, from the API key the bench starts every server with. */
export async function adminToken(base: string): Promise<string> {
  return (await api<{ access_token: string }>(base, "POST", "/api/v1/auth/token", {
    api_key: ADMIN_API_KEY,
  })).access_token;
}

/** A new dataset's id. */
export async function createDataset(
  base: string,
  token: string,
  name: string,
  labels = ["car", "person"],
): Promise<string> {
  return (await api<{ id: string }>(base, "POST", "/api/v1/datasets", { name, labels }, token)).id;
}

/** `n` new annotators, named `${prefix}-1` … `${prefix}-n`: their access tokens, in order. */
export async function createAnnotators(
  base: string,
  token: string,
  n: number,
  prefix = "bench-annotator",
): Promise<string[]> {
  const tokens: string[] = [];
  for (let i = 0; i < n; i++) {
    const { api_key } = await api<{ api_key: string }>(base, "POST", "/api/v1/users", {
      name: `${prefix}-${i + 1}`,
      role: "annotator",
    }, token);
    tokens.push(
      (await api<{ access_token: string }>(base, "POST", "/api/v1/auth/token", { api_key }))
        .access_token,
    );
  }
  return tokens;
}
