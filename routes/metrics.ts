/** `GET /metrics`: Prometheus text format; guarded by METRICS_TOKEN when that is set. */
import { createRoute, z } from "@hono/zod-openapi";
import { timingSafeEqual } from "node:crypto";
import { ApiError } from "../lib/http/errors.ts";
import type { Metrics } from "../lib/runtime/metrics.ts";
import { createRouter } from "../lib/http/router.ts";
import { errors } from "../lib/http/openapi.ts";

const metricsRoute = createRoute({
  method: "get",
  path: "/metrics",
  operationId: "getMetrics",
  tags: ["health"],
  summary: "Prometheus metrics (Bearer METRICS_TOKEN when the server sets one)",
  // Open, or a bearer METRICS_TOKEN when the server sets one.
  security: [{}, { MetricsToken: [] }],
  responses: {
    200: {
      description: "Metrics in the Prometheus text exposition format",
      content: { "text/plain": { schema: z.string() } },
    },
    ...errors("metrics_token"),
  },
});

const encoder = new TextEncoder();

function sameSecret(given: string, expected: string): boolean {
  const a = encoder.encode(given);
  const b = encoder.encode(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function metricsRouter(metrics: Metrics, token: string | undefined) {
  return createRouter().openapi(metricsRoute, (c) => {
    if (token) {
      const given = /^Bearer (\S+)$/.exec(c.req.header("authorization") ?? "")?.[1] ?? "";
      if (!sameSecret(given, token)) {
        throw new ApiError(
          401,
          "unauthorized",
          "metrics need `Authorization: Bearer <METRICS_TOKEN>`",
        );
      }
    }
    return c.text(metrics.render(), 200, { "content-type": "text/plain; version=0.0.4" });
  });
}
