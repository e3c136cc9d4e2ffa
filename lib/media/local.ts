/**
 * file:// images, served by this server from under MEDIA_LOCAL_ROOT only, at
 * `/media/local/<path under the root>?token=…` (the token: lib/auth/url_tokens.ts).
 *
 * A path is refused (404, nothing opened) when any segment is empty, `.`, `..`, or decodes to
 * something holding `/`, `\` or NUL (so `%2e%2e` and `%2F` fail like `..` and `/`); then when the
 * file's real path (symlinks resolved) is not inside the root's real path; then when it is not a
 * regular file. Only after all of that is the file opened.
 */
import { extname } from "node:path";
import { ApiError, errorBody } from "../http/errors.ts";

/** Where the server serves file:// images. */
export const LOCAL_MEDIA_PREFIX = "/media/local/";

const CONTENT_TYPES: Record<string, string> = {
  ".avif": "image/avif",
  ".bmp": "image/bmp",
  ".gif": "image/gif",
  ".heic": "image/heic",
  ".ico": "image/x-icon",
  ".jpeg": "image/jpeg",
  ".jpg": "image/jpeg",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".tif": "image/tiff",
  ".tiff": "image/tiff",
  ".webp": "image/webp",
};

export function contentTypeOf(path: string): string {
  return CONTENT_TYPES[extname(path).toLowerCase()] ?? "application/octet-stream";
}

/** A path segment that can only name an entry of its directory. */
function safeSegment(s: string): boolean {
  return s !== "" && s !== "." && s !== ".." && !/[/\\\0]/.test(s);
}

/**
 * The path under `root` (its segments percent-encoded, for a URL) that a file:// URI names, or why
 * it is not served. Lexical only, no disk access: the claim path calls it.
 */
export function localUrlPath(
  uri: string,
  root: string,
): { path: string } | { unavailable: string } {
  const outside = { unavailable: `${uri} is not under MEDIA_LOCAL_ROOT` };
  const m = /^file:\/\/(?:localhost)?(\/[^?#]*)$/.exec(uri);
  if (!m) return { unavailable: `${uri} is not a file:///absolute/path URI` };
  const prefix = root.endsWith("/") ? root : `${root}/`;
  const segments: string[] = [];
  for (const raw of m[1].slice(1).split("/")) {
    let s: string;
    try {
      s = decodeURIComponent(raw);
    } catch {
      return { unavailable: `${uri} is not a valid file:// URI (bad percent-encoding)` };
    }
    if (!safeSegment(s)) return outside;
    segments.push(s);
  }
  const absolute = `/${segments.join("/")}`;
  if (!absolute.startsWith(prefix)) return outside;
  return {
    path: absolute.slice(prefix.length).split("/").map(encodeURIComponent).join("/"),
  };
}

const notServed = () => new ApiError(404, "not_found", "no such file");

/** The root's real path, resolved once per root (it is configuration). */
const realRoots = new Map<string, Promise<string>>();

/**
 * The segments of `urlPath` (the part of a request path after LOCAL_MEDIA_PREFIX, still
 * percent-encoded), decoded: throws 404 for any that could leave its directory. Lexical only.
 */
export function localSegments(urlPath: string): string[] {
  const segments: string[] = [];
  for (const raw of urlPath.split("/")) {
    let s: string;
    try {
      s = decodeURIComponent(raw);
    } catch {
      throw notServed();
    }
    if (!safeSegment(s)) throw notServed();
    segments.push(s);
  }
  return segments;
}

/**
 * The regular file that `segments` (from localSegments) name under `root`, with its stat: throws
 * 404 when it does not exist or its real path (symlinks resolved) is outside the root's.
 */
export async function resolveLocalFile(
  root: string,
  segments: string[],
): Promise<{ path: string; info: Deno.FileInfo }> {
  let realRoot = realRoots.get(root);
  if (!realRoot) {
    realRoot = Deno.realPath(root);
    realRoots.set(root, realRoot);
    realRoot.catch(() => realRoots.delete(root));
  }
  let real: string;
  let base: string;
  try {
    base = await realRoot;
    real = await Deno.realPath(`${root}/${segments.join("/")}`);
  } catch {
    throw notServed();
  }
  if (!real.startsWith(`${base}/`)) throw notServed();
  const info = await Deno.stat(real).catch(() => null);
  if (!info?.isFile) throw notServed();
  return { path: real, info };
}

/** A strong validator from size and modification time. */
export function etagOf(info: Deno.FileInfo): string {
  return `"${info.size.toString(16)}-${(info.mtime?.getTime() ?? 0).toString(16)}"`;
}

/** The one byte range of a `Range: bytes=…` header, or null to send the whole file. */
function byteRange(header: string | undefined, size: number): [number, number] | null | "bad" {
  const m = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
  // Absent, multi-range or another unit: the whole file (RFC 9110 allows ignoring Range).
  if (!m || (m[1] === "" && m[2] === "")) return null;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return "bad";
    return [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return "bad";
  return [start, end];
}

/** `length` bytes of the file from `start`, closing it when done or cancelled. */
async function fileSlice(path: string, start: number, length: number): Promise<ReadableStream> {
  const file = await Deno.open(path, { read: true });
  if (start) await file.seek(start, Deno.SeekMode.Start);
  let left = length;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const buffer = new Uint8Array(Math.min(64 * 1024, left));
      const n = left > 0 ? await file.read(buffer) : null;
      if (n === null || n === 0) {
        file.close();
        controller.close();
        return;
      }
      left -= n;
      controller.enqueue(buffer.subarray(0, n));
    },
    cancel() {
      file.close();
    },
  }, { highWaterMark: 0 });
}

/**
 * The file as a response: 200, 206 for a single satisfiable range, 304 for a matching
 * If-None-Match, 416 (JSON, and a Content-Range giving the size) for a range outside it.
 * `maxAgeSeconds`: how long the URL is valid.
 */
export async function localFileResponse(
  file: { path: string; info: Deno.FileInfo },
  request: Request,
  maxAgeSeconds: number,
): Promise<Response> {
  const { size } = file.info;
  const etag = etagOf(file.info);
  const headers = new Headers({
    "content-type": contentTypeOf(file.path),
    etag,
    "cache-control": `private, max-age=${Math.max(0, maxAgeSeconds)}`,
    "accept-ranges": "bytes",
    "x-content-type-options": "nosniff",
    // An SVG opened from this origin as a page must not run scripts on it.
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
  });
  if (request.headers.get("if-none-match")?.split(",").some((t) => t.trim() === etag)) {
    return new Response(null, { status: 304, headers });
  }
  const ifRange = request.headers.get("if-range");
  const range = ifRange && ifRange !== etag
    ? null
    : byteRange(request.headers.get("range") ?? undefined, size);
  if (range === "bad") {
    const body = errorBody("range_not_satisfiable", `the file has ${size} bytes`);
    return Response.json(body, { status: 416, headers: { "content-range": `bytes */${size}` } });
  }
  const [start, end] = range ?? [0, size - 1];
  const length = size === 0 ? 0 : end - start + 1;
  headers.set("content-length", String(length));
  if (range) headers.set("content-range", `bytes ${start}-${end}/${size}`);
  const status = range ? 206 : 200;
  if (request.method === "HEAD" || length === 0) return new Response(null, { status, headers });
  return new Response(await fileSlice(file.path, start, length), { status, headers });
}
