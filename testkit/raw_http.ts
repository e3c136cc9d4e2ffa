/** HTTP/1.1 over a raw TCP socket: for clients fetch cannot imitate (slow, huge, half-sent). */

export interface RawAnswer {
  /** 0: no status line came back. */
  status: number;
  head: string;
  body: string;
  /** Why reading stopped early: "reset", "timeout", "refused", ... */
  error?: string;
  /** Until the connection closed (or the read gave up). */
  ms: number;
  /** Until the first byte of the answer (Infinity: none came). */
  firstByteMs: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads everything until the server closes (requests say `Connection: close`) or `timeoutMs`. */
export async function readAnswer(
  conn: Deno.Conn,
  timeoutMs: number,
  started: number,
): Promise<RawAnswer> {
  const chunks: Uint8Array[] = [];
  let firstByteMs = Infinity;
  const buf = new Uint8Array(64 * 1024);
  let error: string | undefined;
  const timer = setTimeout(() => {
    error = "timeout";
    try {
      conn.close();
    } catch {
      // closed
    }
  }, timeoutMs);
  try {
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      if (!chunks.length) firstByteMs = performance.now() - started;
      chunks.push(buf.slice(0, n));
    }
  } catch (e) {
    error ??= e instanceof Deno.errors.ConnectionReset ? "reset" : (e as Error).name;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // closed
    }
  }
  const text = decoder.decode(concat(chunks));
  const split = text.indexOf("\r\n\r\n");
  const head = split >= 0 ? text.slice(0, split) : text;
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
  return {
    status,
    head,
    body: split >= 0 ? text.slice(split + 4) : "",
    error,
    ms: performance.now() - started,
    firstByteMs,
  };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** One request on its own connection; `body` may be a string, bytes or an async source. */
export async function rawRequest(
  port: number,
  head: string,
  opts: { body?: string | Uint8Array; timeoutMs?: number } = {},
): Promise<RawAnswer> {
  const started = performance.now();
  let conn: Deno.Conn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch (e) {
    return {
      status: 0,
      head: "",
      body: "",
      error: `refused: ${(e as Error).message}`,
      ms: 0,
      firstByteMs: Infinity,
    };
  }
  try {
    await writeAll(conn, encoder.encode(head));
    if (opts.body !== undefined) {
      await writeAll(conn, typeof opts.body === "string" ? encoder.encode(opts.body) : opts.body);
    }
  } catch (e) {
    // The server may answer (413) and close before the body is all sent: read what it said.
    return { ...(await readAnswer(conn, 2000, started)), error: `write: ${(e as Error).name}` };
  }
  return readAnswer(conn, opts.timeoutMs ?? 30_000, started);
}

export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await conn.write(bytes.subarray(at));
}

/** The request head for `method path` with a bearer token and `Connection: close`. */
export function head(
  method: string,
  path: string,
  token: string | null,
  extra: Record<string, string | number> = {},
): string {
  const lines = [`${method} ${path} HTTP/1.1`, "Host: 127.0.0.1", "Connection: close"];
  if (token) lines.push(`Authorization: Bearer ${token}`);
  for (const [k, v] of Object.entries(extra)) lines.push(`${k}: ${v}`);
  return lines.join("\r\n") + "\r\n\r\n";
}
