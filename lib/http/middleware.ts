/**
 * The request pipeline's middleware: the request log and metrics, the per-request deadline, the
 * body size limit, and the budget for large bodies. lib/http/app.ts applies them in that order.
 */
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { routePath } from "hono/route";
import { QueryScope } from "../db/scope.ts";
import type { Logger } from "../runtime/log.ts";
import type { Metrics } from "../runtime/metrics.ts";
import { ApiError } from "./errors.ts";
import { ByteBudget, collectLater, Deadlines, LARGE_BODY_BYTES } from "./limits.ts";
import type { AppEnv } from "./router.ts";

/** Probes and scrapes are logged at debug level, so they do not drown the request log. */
const QUIET_ROUTES = new Set(["/healthz", "/readyz", "/metrics"]);

/**
 * One structured line and one metric observation per request. Only these fields are logged:
 * never headers, bodies or query strings, so tokens and API keys cannot leak into logs.
 */
export function requestLog(log: Logger, metrics: Metrics): MiddlewareHandler<AppEnv> {
  // The metric series of each (method, route, status), found by one string key.
  const series = new Map<
    string,
    { count: { value: number }; latency: { observe(s: number): void } }
  >();
  const seriesFor = (method: string, route: string, status: number) => {
    const key = `${method} ${status} ${route}`;
    let s = series.get(key);
    if (!s) {
      const labels = { method, route, status: String(status) };
      s = { count: metrics.requests.series(labels), latency: metrics.latency.series(labels) };
      series.set(key, s);
    }
    return s;
  };
  return async (c, next) => {
    const started = performance.now();
    const given = c.req.header("x-request-id");
    const id = given && /^[\w.:-]{1,128}$/.test(given) ? given : crypto.randomUUID();
    c.set("requestId", id);
    // Set before the handler, so that the answers built with the context carry it from the
    // start; set after, Hono copies the answer into a new Response with a streamed body (about
    // 8 µs a request). A Response a handler built itself gets it here.
    c.header("x-request-id", id);
    await next();
    if (!c.res.headers.has("x-request-id")) c.header("x-request-id", id);
    const seconds = (performance.now() - started) / 1000;
    const matched = routePath(c, -1);
    const route = matched.endsWith("*") ? "unmatched" : matched;
    const s = seriesFor(c.req.method, route, c.res.status);
    s.count.value++;
    s.latency.observe(seconds);
    const level = QUIET_ROUTES.has(route) ? "debug" : "info";
    if (!log.enabled(level)) return;
    log[level]("request", {
      method: c.req.method,
      route,
      status: c.res.status,
      duration_ms: Math.round(seconds * 10_000) / 10,
      request_id: c.get("requestId"),
      user_id: c.get("principal")?.id ?? null,
    });
  };
}

/** How long a timed-out request waits for its cancelled queries to end before answering. */
const CANCEL_GRACE_MS = 5_000;

/**
 * A bound on each request. At the deadline the request's queries are cancelled and no new one
 * may start (lib/db/scope.ts), so a timeout answer never hides a write that lands later: if a
 * query was running, the answer waits for the handler to settle (cancelled queries end within
 * milliseconds) and reports what really happened, which is a write only if it committed before
 * the cancel arrived. The database bounds each statement too (DB_STATEMENT_TIMEOUT_MS); a
 * streamed export returns its Response at once, so this bounds only its start.
 */
export function deadline(limitMs: number): MiddlewareHandler<AppEnv> {
  const timedOut = () => new ApiError(503, "timeout", `the request took longer than ${limitMs} ms`);
  const deadlines = new Deadlines();
  return async (_c, next) => {
    const scope = new QueryScope();
    let late!: () => void;
    const lateness = new Promise<"late">((resolve) => late = () => resolve("late"));
    const forget = deadlines.add(limitMs, late);
    const work = scope.run(next);
    let graceTimer: ReturnType<typeof setTimeout> | undefined;
    try {
      if (await Promise.race([work.then(() => "done" as const), lateness]) === "done") return;
      const timeout = timedOut();
      scope.expire(timeout);
      // Nothing running: nothing can be written any more (no query may start), answer now.
      if (scope.inFlight === 0) throw timeout;
      const grace = new Promise<"late">((resolve) => {
        graceTimer = setTimeout(() => resolve("late"), CANCEL_GRACE_MS);
      });
      if (await Promise.race([work.then(() => "done" as const), grace]) === "late") throw timeout;
    } finally {
      forget();
      clearTimeout(graceTimer);
    }
  };
}

/**
 * hono's bodyLimit, answering 413 in the one error shape. A body sent without a length is read
 * whole here, and when it cannot be read (the client hung up while sending it: Deno's
 * BadResource) the answer is a 400, not a 500; errors from later handlers pass through.
 */
export function limitBody(maxSize: number): MiddlewareHandler {
  const tooLarge = () =>
    new ApiError(413, "payload_too_large", `the request body exceeds ${maxSize} bytes`);
  const limit = bodyLimit({
    maxSize,
    onError: () => {
      throw tooLarge();
    },
  });
  return async (c, next) => {
    // A declared length is checked from the header alone, as bodyLimit does, but without
    // touching the body first: Deno builds a stream for it (decision 0021).
    const headers = c.req.raw.headers;
    const length = headers.get("content-length");
    if (length !== null && !headers.has("transfer-encoding")) {
      if (parseInt(length, 10) > maxSize) throw tooLarge();
      return await next();
    }
    let passed = false;
    try {
      return await limit(c, () => {
        passed = true;
        return next();
      });
    } catch (e) {
      if (passed || e instanceof ApiError) throw e;
      throw new ApiError(400, "bad_request", "the request body could not be read");
    }
  };
}

/**
 * Large bodies are handled one at a time, from reading to the answer: a body needs several times
 * its size in memory while parsed (a 30 MiB batch about 85 MiB), and twelve near-limit bodies at
 * once took the server past 1 GiB. Two streams of 10,000-image batches, handled two at a time,
 * peaked at 160–191 MiB of RSS (9 runs, two past the bench's 200 MB); one at a time, at 153–157
 * MiB (6 runs), for 45–48 thousand images/s in all instead of 60–62 (decision 0014). Bodies of 256
 * KiB or less (every call but bulk batches) are not counted, nor is a request without a body; one
 * without a declared length (chunked, or HTTP/2) is. The rest wait their turn in arrival order,
 * within the request's deadline. Applied after authentication (lib/http/security.ts), so an
 * anonymous caller cannot hold it.
 */
export class BodyBudget {
  readonly #turn = new ByteBudget(1);
  constructor(readonly waitMs: number) {}

  async admit(c: Context, next: () => Promise<void>): Promise<void> {
    const method = c.req.method;
    if (method === "GET" || method === "HEAD" || method === "DELETE") return await next();
    const length = c.req.raw.headers.get("content-length");
    const large = length !== null ? Number(length) > LARGE_BODY_BYTES : c.req.raw.body !== null;
    if (!large) return await next();
    const release = await this.#turn.take(1, this.waitMs);
    if (!release) {
      throw new ApiError(503, "busy", "other large request bodies are being handled; retry");
    }
    try {
      await next();
    } finally {
      release();
      collectLater();
    }
  }
}
