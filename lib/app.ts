/** Builds the application without listening, so tests drive it with `app.request(...)`. */
import { bodyLimit } from "hono/body-limit";
import { authenticate, createAuth } from "./auth.ts";
import { ApiError, errorBody, makeOnError } from "./errors.ts";
import { createRouter, type Deps } from "./router.ts";
import { authRouter, TOKEN_PATH } from "../routes/auth.ts";
import { datasetsRouter } from "../routes/datasets.ts";
import { healthRouter } from "../routes/health.ts";
import { imagesRouter } from "../routes/images.ts";
import { mountSpecPage, SPEC_JSON_PATH } from "../routes/spec.ts";
import { usersRouter } from "../routes/users.ts";

export const API_VERSION = "0.1.0";

export function createApp(deps: Deps) {
  const app = createRouter();

  app.use("*", async (c, next) => {
    c.set("requestId", c.req.header("x-request-id")?.slice(0, 128) || crypto.randomUUID());
    await next();
    c.header("x-request-id", c.get("requestId"));
  });

  app.use(
    "/api/v1/*",
    bodyLimit({
      maxSize: deps.config.bodyLimitBytes,
      onError: () => {
        throw new ApiError(
          413,
          "payload_too_large",
          `the request body exceeds ${deps.config.bodyLimitBytes} bytes`,
        );
      },
    }),
  );

  const auth = createAuth(deps.db, deps.config.auth);
  const requireToken = authenticate(auth);
  app.use("/api/v1/*", (c, next) => {
    return c.req.path === `/api/v1${TOKEN_PATH}` ? next() : requireToken(c, next);
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "Bearer", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: "A token from createToken (POST /api/v1/auth/token with an API key), or from " +
      "the configured identity provider",
  });

  app.route("/", healthRouter(deps));
  app.route("/api/v1", authRouter(auth));
  app.route("/api/v1", usersRouter(deps, auth));
  app.route("/api/v1", datasetsRouter(deps));
  app.route("/api/v1", imagesRouter(deps));

  app.doc31(SPEC_JSON_PATH, {
    openapi: "3.1.0",
    info: {
      title: "Image annotation server",
      version: API_VERSION,
      description: "Queues images for human annotators by priority, with leases, and collects " +
        "human and machine annotations for ML clients.",
    },
  });
  mountSpecPage(app);

  app.notFound((c) =>
    c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404)
  );
  app.onError(makeOnError(deps.log));
  return app;
}

export type App = ReturnType<typeof createApp>;
