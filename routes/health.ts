/** Liveness and readiness probes (open: no credentials). */
import { createRoute, z } from "@hono/zod-openapi";
import { errorBody } from "../lib/http/errors.ts";
import { pendingMigrations } from "../lib/db/migrate.ts";
import { createRouter } from "../lib/http/router.ts";
import { open } from "../lib/http/security.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import { errors, jsonResponse } from "../lib/http/openapi.ts";

const healthRoute = createRoute({
  method: "get",
  path: "/healthz",
  operationId: "getHealth",
  ...open(),
  tags: ["health"],
  summary: "Liveness: 200 while the process is up",
  responses: { 200: jsonResponse(z.object({ status: z.literal("ok") }), "The process is up") },
});

const readinessRoute = createRoute({
  method: "get",
  path: "/readyz",
  operationId: "getReadiness",
  ...open(),
  tags: ["health"],
  summary: "Readiness: 200 when the database answers and no migration is pending",
  responses: {
    200: jsonResponse(z.object({ status: z.literal("ready") }), "Ready for traffic"),
    ...errors("not_ready"),
  },
});

const READY_TIMEOUT_MS = 2000;

/**
 * Why the service is not ready, or null when it is: a reason fit for anyone who can reach the
 * probe (it is open), with the detail (the database's own error text, which can name hosts,
 * users and databases; the pending versions) left to the log.
 */
async function notReadyReason(deps: Deps): Promise<string | null> {
  if (deps.shuttingDown?.()) return "shutting down";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<[string, string]>((resolve) => {
    timer = setTimeout(
      () => resolve(["database unavailable", `did not answer within ${READY_TIMEOUT_MS} ms`]),
      READY_TIMEOUT_MS,
    );
  });
  const check = (async (): Promise<[string, string] | null> => {
    try {
      const pending = await pendingMigrations(deps.db);
      return pending.length
        ? [`pending migrations: ${pending.length}`, `pending: ${pending.join(", ")}`]
        : null;
    } catch (e) {
      return ["database unavailable", String((e as Error)?.message ?? e)];
    }
  })();
  try {
    const outcome = await Promise.race([check, timeout]);
    if (!outcome) return null;
    const [reason, detail] = outcome;
    deps.log.warn("not ready", { reason, detail });
    return reason;
  } finally {
    clearTimeout(timer);
  }
}

export function healthRouter(deps: Deps) {
  return createRouter()
    .openapi(healthRoute, (c) => c.json({ status: "ok" as const }, 200))
    .openapi(readinessRoute, async (c) => {
      const reason = await notReadyReason(deps);
      if (reason) return c.json(errorBody("not_ready", reason), 503);
      return c.json({ status: "ready" as const }, 200);
    });
}
