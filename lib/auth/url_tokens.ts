/**
 * Tokens that make one of the server's own URLs usable without a header, until an expiry: an
 * `<img src>` cannot send `Authorization`. A token is `<expires>.<mac>`: `expires` in Unix
 * seconds, `mac` the HMAC-SHA256 (base64url) of the URL's path and `expires`, so it opens that
 * path only, and only until then. The key is derived from AUTH_JWT_SECRET under its own label:
 * a URL token is never a JWT signature, and the raw secret never signs anything but JWTs. During
 * a rotation, tokens made with AUTH_JWT_SECRET_ACCEPTED's key are accepted too (never made).
 */
import { Buffer } from "node:buffer";
import { timingSafeEqual } from "node:crypto";
import { FixedKeyHmac } from "./hmac.ts";

const KEY_LABEL = "annotation-server/url-token/v1";
const TOKEN = /^([0-9]{1,12})\.([A-Za-z0-9_-]{43})$/;

/**
 * A request URL's path exactly as the client sent it. Deno hands the request target over without
 * resolving `..` (Hono routes on it as it is), while `new URL(url).pathname` resolves it: a check
 * made on the resolved path would be about another path than the one routed.
 */
export function rawPath(url: string): string {
  const start = url.indexOf("/", url.indexOf("://") + 3);
  if (start < 0) return "/";
  const end = url.indexOf("?", start);
  return end < 0 ? url.slice(start) : url.slice(start, end);
}

export type TokenCheck = "ok" | "invalid" | "expired";

export interface UrlTokens {
  /** A token for `path` valid until `expiresAt` (rounded down to the second). */
  sign(path: string, expiresAt: Date): string;
  /** Whether `token` opens `path` at `now`: "invalid" when altered or for another path. */
  check(path: string, token: string, now?: Date): TokenCheck;
}

const derivedKey = (secret: string) =>
  new FixedKeyHmac(
    new Uint8Array(new FixedKeyHmac(new TextEncoder().encode(secret)).digest(KEY_LABEL)),
  );

export function createUrlTokens(secret: string, acceptedSecret?: string): UrlTokens {
  const keys = [derivedKey(secret), ...(acceptedSecret ? [derivedKey(acceptedSecret)] : [])];
  const mac = (key: FixedKeyHmac, path: string, expires: string) =>
    key.digest(`${path}\n${expires}`);
  return {
    sign(path, expiresAt) {
      const expires = String(Math.floor(expiresAt.getTime() / 1000));
      return `${expires}.${mac(keys[0], path, expires).toString("base64url")}`;
    },
    check(path, token, now = new Date()) {
      const m = TOKEN.exec(token);
      if (!m) return "invalid";
      const given = Buffer.from(m[2], "base64url");
      if (given.length !== 32) return "invalid";
      if (!keys.some((key) => timingSafeEqual(given, mac(key, path, m[1])))) return "invalid";
      return Number(m[1]) * 1000 > now.getTime() ? "ok" : "expired";
    },
  };
}
