/** The one router factory: every router shares the app's bindings and validation hook. */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Principal } from "../../sql/users/queries.ts";
import type { Config } from "../runtime/config.ts";
import type { Db } from "../db/query.ts";
import { validationHook } from "./errors.ts";
import type { Logger } from "../runtime/log.ts";
import type { Metrics } from "../runtime/metrics.ts";

/** What the app needs from the outside world; tests pass their own. */
export interface Deps {
  db: Db;
  config: Config;
  log: Logger;
  /** Created by createApp when not given. */
  metrics?: Metrics;
  /** Set once shutdown starts: readiness turns 503. */
  shuttingDown?: () => boolean;
}

export interface AppEnv {
  Variables: {
    requestId: string;
    /** The authenticated caller; set on every /api/v1 route but createToken. */
    principal: Principal;
  };
}

export function createRouter() {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
}

export type Router = ReturnType<typeof createRouter>;
