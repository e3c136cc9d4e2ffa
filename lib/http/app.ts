/** Builds the application without listening, so tests drive it with `app.request(...)`. */
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { routePath } from "hono/route";
import { authenticate, createAuth } from "../auth/tokens.ts";
import { ApiError, errorBody, makeOnError } from "./errors.ts";
import { activity, expireQueries, newQueryScope, withQueryScope } from "../db/query.ts";
import { ByteBudget, collectLater, Deadlines, LARGE_BODY_BYTES } from "./limits.ts";
import { Metrics } from "../runtime/metrics.ts";
import { createRouter, type Deps } from "./router.ts";
import { annotationsRouter } from "../../routes/annotations.ts";
import { authRouter, TOKEN_PATH } from "../../routes/auth.ts";
import { claimsRouter } from "../../routes/claims.ts";
import { datasetsRouter } from "../../routes/datasets.ts";
import { exportsRouter } from "../../routes/exports.ts";
import { feedRouter } from "../../routes/feed.ts";
import { healthRouter } from "../../routes/health.ts";
import { imagesRouter } from "../../routes/images.ts";
import { metricsRouter } from "../../routes/metrics.ts";
import { mountSpecPage, SPEC_JSON_PATH } from "../../routes/spec.ts";
import { usersRouter } from "../../routes/users.ts";

export const API_VERSION = "0.1.0";

/** How long a timed-out request waits for its cancelled queries to end before answering. */
const CANCEL_GRACE_MS = 5_000;

/** The largest createToken body. */
const TOKEN_BODY_BYTES = 64 * 1024;

/** Probes and scrapes are logged at debug level, so they do not drown the request log. */
const QUIET_ROUTES = new Set(["/healthz", "/readyz", "/metrics"]);

export function createApp(deps: Deps) {
  const app = createRouter();
  const { log } = deps;
  const metrics = deps.metrics ?? new Metrics();
  metrics.gauge("db_pool_max_connections", "Connections the database pool may open", () => [
    [{}, deps.config.db.poolMax],
  ]);
  // Counts of work started and not finished, queued for a connection included: they can exceed
  // db_pool_max_connections (postgres.js exposes no count of connections held).
  metrics.gauge(
    "db_queries_in_flight",
    "Queries started and not finished: running, or waiting for a connection",
    () => [[{}, activity.queries]],
  );
  metrics.gauge(
    "db_transactions_in_flight",
    "Transactions started and not finished: open (holding a connection), or waiting for one",
    () => [[{}, activity.transactions]],
  );

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

  // One structured line per request. Only these fields are logged: never headers, bodies or
  // query strings, so tokens and API keys cannot leak into logs.
  app.use("*", async (c, next) => {
    const started = performance.now();
    const given = c.req.header("x-request-id");
    c.set("requestId", given && /^[\w.:-]{1,128}$/.test(given) ? given : crypto.randomUUID());
    await next();
    c.header("x-request-id", c.get("requestId"));
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
  });

  // A bound on each API request. At the deadline the request's queries are cancelled and no new
  // one may start (lib/db/query.ts QueryScope), so a timeout answer never hides a write that lands
  // later: if a query was running, the answer waits for the handler to settle (cancelled
  // queries end within milliseconds) and reports what really happened, which is a write only if
  // it committed before the cancel arrived. The database has its own bound on each statement
  // (DB_STATEMENT_TIMEOUT_MS); a streamed export returns its Response at once, so this bounds
  // only its start.
  const limitMs = deps.config.requestTimeoutMs;
  const timedOut = () => new ApiError(503, "timeout", `the request took longer than ${limitMs} ms`);
  const deadlines = new Deadlines();
  app.use("/api/v1/*", async (_c, next) => {
    const scope = newQueryScope();
    let late!: () => void;
    const deadline = new Promise<"late">((resolve) => late = () => resolve("late"));
    const forget = deadlines.add(limitMs, late);
    const work = withQueryScope(scope, next);
    let graceTimer: ReturnType<typeof setTimeout> | undefined;
    try {
      if (await Promise.race([work.then(() => "done" as const), deadline]) === "done") return;
      const timeout = timedOut();
      expireQueries(scope, timeout);
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
  });

  app.use("/api/v1/*", limitBody(deps.config.bodyLimitBytes));
  // The one anonymous operation takes an API key: 64 KiB is more than any real request, and
  // keeps anonymous callers away from the large-body budget below.
  app.use(`/api/v1${TOKEN_PATH}`, limitBody(TOKEN_BODY_BYTES));

  const auth = createAuth(deps.db, deps.config.auth);
  const requireToken = authenticate(auth);
  app.use("/api/v1/*", (c, next) => {
    return c.req.path === `/api/v1${TOKEN_PATH}` ? next() : requireToken(c, next);
  });

  // Large bodies take their size from a shared budget while they are read, parsed and handled:
  // a body needs several times its size in memory while parsed (a 30 MiB batch about 85 MiB),
  // so twelve near-limit bodies at once took the server past 1 GiB (deno task stress). Bodies
  // of 256 KiB or less (every call but bulk batches) are not counted; the rest wait their turn,
  // within the request's deadline. The budget is one body of the largest size accepted. After
  // authentication, so an anonymous caller cannot hold it (createToken, the one operation without
  // a token, takes 64 KiB at most).
  const budget = new ByteBudget(deps.config.bodyLimitBytes);
  app.use("/api/v1/*", async (c, next) => {
    const method = c.req.method;
    if (method === "GET" || method === "HEAD" || method === "DELETE") return await next();
    const length = c.req.header("content-length");
    const size = !c.req.raw.body
      ? 0
      : length !== undefined
      ? Math.min(Number(length) || 0, deps.config.bodyLimitBytes)
      // No declared length (chunked, or HTTP/2): as large as it may grow.
      : deps.config.bodyLimitBytes;
    if (size <= LARGE_BODY_BYTES || c.req.path === `/api/v1${TOKEN_PATH}`) return await next();
    const release = await budget.take(size, limitMs);
    if (!release) {
      throw new ApiError(503, "busy", "too many large request bodies in flight; retry");
    }
    try {
      await next();
    } finally {
      release();
      collectLater();
    }
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "Bearer", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: "A token from createToken (POST /api/v1/auth/token with an API key), or from " +
      "the configured identity provider",
  });

  app.route("/", healthRouter(deps));
  app.route("/", metricsRouter(metrics, deps.config.metricsToken));
  app.route("/api/v1", authRouter(auth));
  app.route("/api/v1", usersRouter(deps, auth));
  app.route("/api/v1", datasetsRouter(deps));
  app.route("/api/v1", imagesRouter(deps));
  app.route("/api/v1", claimsRouter({ ...deps, metrics }));
  app.route("/api/v1", annotationsRouter({ ...deps, metrics }));
  app.route("/api/v1", feedRouter(deps)).route("/api/v1", exportsRouter(deps));

  let spec: unknown;
  app.get(SPEC_JSON_PATH, (c) => {
    spec ??= app.getOpenAPI31Document({
      openapi: "3.1.0",
      info: {
        title: "Image annotation server",
        version: API_VERSION,
        description: "Queues images for human annotators by priority, with leases, and " +
          "collects human and machine annotations for ML clients.",
      },
    });
    return c.json(spec);
  });
  mountSpecPage(app);

  app.notFound((c) =>
    c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404)
  );
  app.onError(makeOnError(log));
  return app;
}

export type App = ReturnType<typeof createApp>;

/**
 * hono's bodyLimit, answering 413 in the one error shape. A body sent without a length is read
 * whole here, and when it cannot be read (the client hung up while sending it: Deno's
 * BadResource) the answer is a 400, not a 500; errors from later handlers pass through.
 */
function limitBody(maxSize: number): MiddlewareHandler {
  const limit = bodyLimit({
    maxSize,
    onError: () => {
      throw new ApiError(413, "payload_too_large", `the request body exceeds ${maxSize} bytes`);
    },
  });
  return async (c, next) => {
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
