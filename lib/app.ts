/** Builds the application without listening, so tests drive it with `app.request(...)`. */
import { bodyLimit } from "hono/body-limit";
import { ApiError, errorBody, makeOnError } from "./errors.ts";
import { createRouter, type Deps } from "./router.ts";
import { datasetsRouter } from "../routes/datasets.ts";
import { healthRouter } from "../routes/health.ts";
import { imagesRouter } from "../routes/images.ts";
import { mountSpecPage, SPEC_JSON_PATH } from "../routes/spec.ts";

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

  app.route("/", healthRouter(deps));
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
