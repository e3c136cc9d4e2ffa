/**
 * Builds the application without listening, so tests drive it with `app.request(...)`: the
 * middleware pipeline (lib/http/middleware.ts), every router, the spec, and the error handlers.
 */
import { cors } from "hono/cors";
import { TrieRouter } from "hono/router/trie-router";
import { type Clock, createAuth } from "../auth/tokens.ts";
import { activity } from "../db/query.ts";
import { createMedia } from "../media/index.ts";
import type { Deps } from "../runtime/deps.ts";
import { Metrics } from "../runtime/metrics.ts";
import { errorBody, makeOnError } from "./errors.ts";
import { BodyBudget, deadline, limitBody, requestLog } from "./middleware.ts";
import { createRouter } from "./router.ts";
import { annotationsRouter } from "../../routes/annotations.ts";
import { authRouter } from "../../routes/auth.ts";
import { claimsRouter } from "../../routes/claims.ts";
import { datasetsRouter } from "../../routes/datasets.ts";
import { exportsRouter } from "../../routes/exports.ts";
import { feedRouter } from "../../routes/feed.ts";
import { healthRouter } from "../../routes/health.ts";
import { imagesRouter } from "../../routes/images.ts";
import { localMediaRouter, mediaRouter } from "../../routes/media.ts";
import { membersRouter } from "../../routes/members.ts";
import { metricsRouter } from "../../routes/metrics.ts";
import { reviewsRouter } from "../../routes/reviews.ts";
import { mountSpecPage, SPEC_JSON_PATH } from "../../routes/spec.ts";
import { usersRouter } from "../../routes/users.ts";
import { webRouter } from "../../routes/web.ts";
import { JSON_VALUE_COMPONENT } from "../../schemas/common.ts";
import { webhooksRouter } from "../../routes/webhooks.ts";

export const API_VERSION = "0.1.0";

/**
 * What createApp takes: the metrics registry and the media signers are made here when not given;
 * `now` is the clock of tokens and the auth caches (Date.now unless a test moves time forward).
 */
export type AppOptions =
  & Omit<Deps, "metrics" | "media">
  & Partial<Pick<Deps, "metrics" | "media">>
  & { now?: Clock };

export function createApp(options: AppOptions) {
  const { now, ...rest } = options;
  const deps: Deps = {
    ...rest,
    metrics: options.metrics ?? new Metrics(),
    media: options.media ?? createMedia(options.config),
  };
  const { config, log, metrics } = deps;
  metrics.gauge("db_pool_max_connections", "Connections the database pool may open", () => [
    [{}, config.db.poolMax],
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

  const app = createRouter();
  const auth = createAuth(deps.db, config.auth, now);
  const bodyBudget = new BodyBudget(config.requestTimeoutMs);
  app.use("*", requestLog(log, metrics));
  // Pages on CORS_ORIGINS may call the API and load local media: their preflights are answered
  // here, before any authentication; other origins get no CORS header at all.
  if (config.media.corsOrigins.length) {
    const allowed = new Set(config.media.corsOrigins);
    const handler = cors({
      origin: [...allowed],
      allowMethods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
      allowHeaders: ["Authorization", "Content-Type"],
      maxAge: 600,
    });
    for (const path of ["/api/*", "/media/*"]) {
      app.use(
        path,
        (c, next) => allowed.has(c.req.header("origin") ?? "") ? handler(c, next) : next(),
      );
    }
  }
  app.use("/api/v1/*", deadline(config.requestTimeoutMs));
  app.use("/api/v1/*", limitBody(config.bodyLimitBytes));
  // What route-level security (lib/http/security.ts) needs.
  app.use("/api/v1/*", async (c, next) => {
    c.set("auth", auth);
    c.set("bodyBudget", bodyBudget);
    c.set("urlTokens", deps.media.tokens);
    await next();
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "Bearer", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: "A token from createToken (POST /api/v1/auth/token with an API key), or from " +
      "the configured identity provider",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "UrlToken", {
    type: "apiKey",
    in: "query",
    name: "token",
    description: "The `token` of a URL the server handed out (an `<img src>` sends no header); " +
      "valid for that URL only, until it expires",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "MetricsToken", {
    type: "http",
    scheme: "bearer",
    description: "METRICS_TOKEN, when the server sets one (GET /metrics is open otherwise)",
  });

  app.route("/", healthRouter(deps));
  app.route("/", metricsRouter(metrics, config.metricsToken));
  app.route("/api/v1", authRouter(auth));
  app.route("/api/v1", usersRouter(deps, auth));
  app.route("/api/v1", datasetsRouter(deps));
  app.route("/api/v1", membersRouter(deps));
  app.route("/api/v1", imagesRouter(deps));
  app.route("/api/v1", mediaRouter(deps));
  app.route("/api/v1", claimsRouter(deps));
  app.route("/api/v1", annotationsRouter(deps));
  app.route("/api/v1", reviewsRouter(deps));
  app.route("/api/v1", feedRouter(deps));
  app.route("/api/v1", exportsRouter(deps));
  app.route("/api/v1", webhooksRouter(deps));
  requireDeclaredSecurity(app);

  // A schema that refers to itself, which zod-to-openapi cannot generate from JsonObject.
  app.openAPIRegistry.registerComponent("schemas", "JsonValue", JSON_VALUE_COMPONENT);

  let spec: unknown;
  app.get(SPEC_JSON_PATH, (c) => {
    spec ??= app.getOpenAPI31Document({
      openapi: "3.1.0",
      info: {
        title: "Image annotation server",
        version: API_VERSION,
        description: "Queues images for human annotators by priority, with leases, and " +
          "collects human and machine annotations for ML clients.",
        license: API_LICENSE,
      },
      // Relative: the document's paths are absolute, and the server does not know the public
      // URL it is reached by (a proxy may terminate TLS in front of it).
      servers: [{ url: "/", description: "The server that serves this document" }],
    });
    return c.json(spec);
  });
  mountSpecPage(app);
  app.route("/", webRouter(config));
  app.route("/", localMediaRouter(deps));

  const methodsOf = allowedMethods(app);
  app.notFound((c) => {
    const allowed = methodsOf(c.req.path);
    // A known path and a method it does not answer: 405, before any authentication (route
    // middleware never ran). A known path and method that still found nothing (an unknown spec
    // asset) is a 404.
    if (allowed.length && !allowed.includes(c.req.method)) {
      c.header("allow", allowed.join(", "));
      return c.json(
        errorBody(
          "method_not_allowed",
          `${c.req.method} is not allowed on ${c.req.path}; allowed: ${allowed.join(", ")}`,
        ),
        405,
      );
    }
    return c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404);
  });
  app.onError(makeOnError(log));
  return app;
}

/**
 * The repository carries no LICENSE file: no licence is granted, and the document says so. Change
 * it here when the project chooses one.
 */
const API_LICENSE = { name: "Proprietary: no licence granted" };

const METHOD_ORDER = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/**
 * The methods each path of `app` answers, from its routes (middleware excluded), looked up with
 * hono's own trie router so a path matches here exactly when it matches there. Built once, from
 * the routes registered so far. HEAD is answered wherever GET is (hono runs the GET handler).
 */
function allowedMethods(app: ReturnType<typeof createRouter>): (path: string) => string[] {
  const router = new TrieRouter<string>();
  for (const r of app.routes) {
    // app.use() registers middleware as method ALL.
    if (r.method !== "ALL") router.add("ALL", r.path, r.method);
  }
  return (path) => {
    const found = new Set(router.match("GET", path)[0].map(([method]) => method));
    if (found.has("GET")) found.add("HEAD");
    return METHOD_ORDER.filter((m) => found.has(m));
  };
}

export type App = ReturnType<typeof createApp>;

/**
 * Every operation under /api/v1 states its security: `secured(...)` (a token and roles),
 * `securedOrUrlToken(...)` (that, or a signed URL) or `open()` (anonymous). A route that states neither would be reachable without credentials, so
 * the app refuses to start with it.
 */
function requireDeclaredSecurity(app: ReturnType<typeof createRouter>): void {
  for (const d of app.openAPIRegistry.definitions) {
    if (d.type !== "route" || !d.route.path.startsWith("/api/v1/")) continue;
    if (!Array.isArray(d.route.security)) {
      throw new Error(
        `${d.route.method.toUpperCase()} ${d.route.path} declares no security: ` +
          "spread secured(...) or open() into its route",
      );
    }
  }
}
