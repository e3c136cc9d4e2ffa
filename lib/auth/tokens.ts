/**
 * Tokens: API keys are exchanged at `createToken` for a short-lived HS256 JWT issued with jose;
 * optionally, tokens of an external identity provider are accepted too, verified against its JWKS
 * (cached by jose, refetched on an unknown `kid`), their `sub` the principal.
 *
 * Verification pins algorithms per key type, so `alg: none` and HS/RS confusion fail, and checks
 * `iss`, `aud`, `exp`. The user's role and disabled flag come from the database, cached for at most
 * AUTH_USER_CACHE_SECONDS (≤ 60 s), so disabling a user takes effect within that.
 *
 * Every reading of the time (issuing, expiry, the caches, the JWKS refetch cooldown) goes through
 * one clock, `now`, so tests move time forward instead of waiting for it.
 */
import {
  createRemoteJWKSet,
  customFetch,
  decodeProtectedHeader,
  errors as joseErrors,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from "jose";
import type { Config } from "../runtime/config.ts";
import type { Db } from "../db/query.ts";
import { ApiError } from "../http/errors.ts";
import * as users from "../../sql/users/queries.ts";
import { externalUserNames, hashApiKey } from "./keys.ts";

type Role = users.Role;
type Principal = users.Principal;

/** Issuer and audience of the tokens this server issues. */
export const TOKEN_ISSUER = "annotation-server";
export const TOKEN_AUDIENCE = "annotation-server-api";

/** Algorithms accepted from an external identity provider: asymmetric only. */
const IDP_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"];

const encoder = new TextEncoder();

const invalidToken = (message = "invalid or expired token") =>
  new ApiError(401, "invalid_token", message);

const idpUnavailable = (reason: string) =>
  new ApiError(503, "unavailable", `the identity provider's key set (JWKS) ${reason}`);

/** How long the provider's JWKS endpoint may take to answer. */
const JWKS_TIMEOUT_MS = 5_000;

/**
 * Minimum time between two fetches of the provider's JWKS: a token with an unknown `kid` makes
 * jose refetch, and this bounds what tokens with made-up `kid`s can cost the provider.
 */
const JWKS_COOLDOWN_MS = 2_000;

/**
 * jose's fetch of the provider's JWKS, made to tell "the provider is unreachable or broken"
 * (refused connection, DNS failure, timeout, a non-200 answer, a body that is no key set: 503,
 * the provider's problem, not the caller's) from "this token is bad" (401). Without it a network
 * error escaped as a 500 and a non-200 answer looked like a bad token.
 */
async function fetchJwks(url: string, init: RequestInit): Promise<Response> {
  const failed = (e: unknown, what: string) =>
    ["TimeoutError", "AbortError"].includes((e as Error).name)
      ? idpUnavailable(`did not answer within ${JWKS_TIMEOUT_MS / 1000} s`)
      // Not the error's own text: it names the URL and the resolver's internals.
      : idpUnavailable(`could not be ${what} (connection failed)`);
  let res: Response;
  let body: string;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw failed(e, "fetched");
  }
  try {
    body = await res.text();
  } catch (e) {
    throw failed(e, "read");
  }
  if (res.status !== 200) throw idpUnavailable(`answered HTTP ${res.status}`);
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw idpUnavailable("is not JSON");
  }
  const keys = (json as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || !keys.every((k) => k && typeof k === "object")) {
    throw idpUnavailable('is not a JSON Web Key Set (no "keys" list)');
  }
  return new Response(body, { status: 200, headers: { "content-type": "application/json" } });
}

export interface TokenResponse {
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
}

/** Milliseconds since the epoch, as `Date.now`. */
export type Clock = () => number;

/** A small time-bounded cache; `ttlMs` 0 disables it. */
class TtlCache<V> {
  #entries = new Map<string, { value: V; until: number }>();
  constructor(private ttlMs: number, private now: Clock, private maxEntries = 10_000) {}
  get(key: string): V | undefined {
    const hit = this.#entries.get(key);
    if (!hit) return undefined;
    if (hit.until <= this.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return hit.value;
  }
  set(key: string, value: V): void {
    if (this.ttlMs <= 0) return;
    if (this.#entries.size >= this.maxEntries) this.#entries.clear();
    this.#entries.set(key, { value, until: this.now() + this.ttlMs });
  }
  delete(key: string): void {
    this.#entries.delete(key);
  }
  clear(): void {
    this.#entries.clear();
  }
}

export interface Auth {
  /** `null` for an unknown, rotated-away or disabled key. */
  userForApiKey(key: string): Promise<Principal | null>;
  issueToken(user: Principal): Promise<TokenResponse>;
  /** The principal a bearer token stands for; throws a 401 ApiError otherwise. */
  verify(token: string): Promise<Principal>;
  /** Drops cached state of a user whose role or status just changed. */
  forget(userId: string): void;
}

/** `now` is the clock every reading of the time goes through (tests move it forward). */
export function createAuth(db: Db, config: Config["auth"], now: Clock = Date.now): Auth {
  if (!config.jwtSecret) throw new Error("createAuth: no JWT secret");
  // Imported once: handing jose the raw bytes would import the key again on every request.
  const importHmac = (secret: string) =>
    crypto.subtle.importKey(
      "raw",
      encoder.encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
  const hmacKey = importHmac(config.jwtSecret);
  // During a rotation: tokens signed with the other secret verify too (never signed with it).
  const acceptedKey = config.jwtAcceptedSecret ? importHmac(config.jwtAcceptedSecret) : undefined;
  // Our own tokens whose signature and claims were already checked, by their exact text (which
  // includes the signature), with their subject and expiry: a client sends the same token on
  // every request, and this skips the HMAC for all but the first. Expiry is still checked each
  // time; the user (role, disabled) is looked up each time through its own short cache.
  const verified = new TtlCache<{ sub: string; expMs: number }>(10 * 60_000, now);
  const byId = new TtlCache<Principal>(config.userCacheSeconds * 1000, now);
  const bySubject = new TtlCache<Principal>(config.userCacheSeconds * 1000, now);
  const jwks = config.jwks;
  // The cooldown between refetches is kept here, on `now`, rather than by jose (which reads
  // Date.now): within JWKS_COOLDOWN_MS of the last key set fetched, a refetch jose asks for is
  // answered with that key set again, so an unknown `kid` is refused without a request to the
  // provider. Only a key set that arrived starts the cooldown: after a failure jose tries again.
  let lastJwks: { at: number; body: string } | undefined;
  const fetchJwksCooled = async (url: string, init: RequestInit): Promise<Response> => {
    if (!lastJwks || now() - lastJwks.at >= JWKS_COOLDOWN_MS) {
      const body = await (await fetchJwks(url, init)).text();
      lastJwks = { at: now(), body };
    }
    return new Response(lastJwks.body, {
      status: 200,
      headers: { "content-type": "application/json" },
    });
  };
  const remoteKeys = jwks
    ? createRemoteJWKSet(new URL(jwks.url), {
      timeoutDuration: JWKS_TIMEOUT_MS,
      cooldownDuration: 0,
      cacheMaxAge: 10 * 60_000,
      [customFetch]: fetchJwksCooled,
    })
    : undefined;

  async function userById(id: string): Promise<Principal | null> {
    const cached = byId.get(id);
    if (cached) return cached;
    if (!/^[1-9][0-9]{0,17}$/.test(id)) return null;
    const user = await users.getUser(db, { id });
    if (!user) return null;
    const p: Principal = {
      id: user.id,
      name: user.name,
      role: user.role,
      disabled_at: user.disabled_at,
    };
    byId.set(id, p);
    return p;
  }

  function roleFrom(payload: JWTPayload, claim: string): Role | null {
    const value = payload[claim];
    const values = Array.isArray(value) ? value : [value];
    // Highest privilege first when a token carries several roles.
    for (const role of users.ROLES) {
      if (values.includes(role)) return role;
    }
    return null;
  }

  async function externalUser(subject: string, role: Role): Promise<Principal> {
    const key = `${subject}\u0000${role}`;
    const cached = bySubject.get(key);
    if (cached) return cached;
    const names = await externalUserNames(subject);
    const p = await users.upsertExternalUser(db, {
      name: names.preferred,
      fallback_name: names.fallback,
      role,
      subject,
    });
    bySubject.set(key, p);
    return p;
  }

  async function verifyJwt(token: string): Promise<Principal | null> {
    const known = verified.get(token);
    if (known) {
      if (known.expMs <= now()) throw invalidToken("token expired");
      return await userById(known.sub);
    }
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw invalidToken("malformed token");
    }
    if (alg === "HS256") {
      const options = {
        algorithms: ["HS256"],
        issuer: TOKEN_ISSUER,
        audience: TOKEN_AUDIENCE,
        requiredClaims: ["sub", "exp", "iat"],
        currentDate: new Date(now()),
      };
      let verifiedJwt: Awaited<ReturnType<typeof jwtVerify>>;
      try {
        verifiedJwt = await jwtVerify(token, await hmacKey, options);
      } catch (e) {
        if (!(acceptedKey && e instanceof joseErrors.JWSSignatureVerificationFailed)) throw e;
        verifiedJwt = await jwtVerify(token, await acceptedKey, options);
      }
      const { payload } = verifiedJwt;
      verified.set(token, { sub: payload.sub!, expMs: payload.exp! * 1000 });
      return await userById(payload.sub!);
    }
    if (remoteKeys && jwks && alg && IDP_ALGORITHMS.includes(alg)) {
      const { payload } = await jwtVerify(token, remoteKeys, {
        algorithms: IDP_ALGORITHMS,
        issuer: jwks.issuer,
        audience: jwks.audience,
        requiredClaims: ["sub", "exp"],
        currentDate: new Date(now()),
      });
      const role = roleFrom(payload, jwks.roleClaim);
      if (!role) throw invalidToken(`the token's "${jwks.roleClaim}" claim names no known role`);
      return await externalUser(payload.sub!, role);
    }
    throw invalidToken(`tokens signed with ${alg ?? "no algorithm"} are not accepted`);
  }

  return {
    async userForApiKey(key) {
      const user = await users.findUserByApiKey(db, { api_key_hash: await hashApiKey(key) });
      return user && !user.disabled_at ? user : null;
    },

    async issueToken(user) {
      const issuedAt = Math.floor(now() / 1000);
      const access_token = await new SignJWT({ role: user.role, name: user.name })
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setSubject(user.id)
        .setIssuer(TOKEN_ISSUER)
        .setAudience(TOKEN_AUDIENCE)
        .setIssuedAt(issuedAt)
        .setExpirationTime(issuedAt + config.tokenTtlSeconds)
        .sign(await hmacKey);
      return { access_token, token_type: "Bearer", expires_in: config.tokenTtlSeconds };
    },

    async verify(token) {
      let user: Principal | null;
      try {
        user = await verifyJwt(token);
      } catch (e) {
        if (e instanceof ApiError) throw e;
        if (e instanceof joseErrors.JWTExpired) throw invalidToken("token expired");
        if (e instanceof joseErrors.JWKSTimeout) {
          throw idpUnavailable(`did not answer within ${JWKS_TIMEOUT_MS / 1000} s`);
        }
        if (e instanceof joseErrors.JOSEError) throw invalidToken();
        throw e;
      }
      if (!user) throw invalidToken("unknown user");
      if (user.disabled_at) throw invalidToken("user disabled");
      return user;
    },

    forget(userId) {
      byId.delete(userId);
      bySubject.clear();
    },
  };
}
