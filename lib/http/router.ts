/** The one router factory: every router shares the app's bindings and validation hook. */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Principal } from "../../sql/users/queries.ts";
import type { Auth } from "../auth/tokens.ts";
import type { UrlTokens } from "../auth/url_tokens.ts";
import { validationHook } from "./errors.ts";
import type { BodyBudget } from "./middleware.ts";

export interface AppEnv {
  Variables: {
    requestId: string;
    /** The authenticated caller; set on every /api/v1 route but createToken. */
    principal: Principal;
    /** Token verification, for route-level authentication (lib/http/security.ts). */
    auth: Auth;
    /** The large-body budget, taken after authentication. */
    bodyBudget: BodyBudget;
    /** Tokens in URLs the server hands out (lib/http/security.ts `securedOrUrlToken`). */
    urlTokens: UrlTokens;
  };
}

export function createRouter() {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
}

export type Router = ReturnType<typeof createRouter>;
