/**
 * API keys (256-bit random secrets, `ak_…`, stored only as SHA-256), development JWT secrets, and
 * the names identity-provider users get.
 */
const encoder = new TextEncoder();

function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** A new API key: 32 random bytes. Shown once; only its hash is stored. */
export function newApiKey(): string {
  return `ak_${base64url(crypto.getRandomValues(new Uint8Array(32)))}`;
}

export async function hashApiKey(key: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(key)));
}

/**
 * Users of an external identity provider are named `idp:<sub>`; the prefix is theirs alone, so
 * createUser, user:create and ADMIN_NAME refuse it and a local user can never take the name a
 * provider user will need.
 */
export const EXTERNAL_NAME_PREFIX = "idp:";

export function isReservedUserName(name: string): boolean {
  return name.startsWith(EXTERNAL_NAME_PREFIX);
}

/** User names are at most this many characters (code points). */
const MAX_NAME = 200;

/**
 * The names a provider user with subject `sub` may get. `preferred` is `idp:<sub>` when that
 * fits in 199 code points; a longer subject gets its first 152 code points, `#` and the
 * SHA-256 of the whole subject (base64url), exactly 200 code points, so two long subjects with
 * a common start never share a name, nor does a long subject with a short one (the lengths
 * differ). `fallback` (always hashed) is for the rare name already taken by a user created
 * before `idp:` was reserved.
 */
export async function externalUserNames(
  sub: string,
): Promise<{ preferred: string; fallback: string }> {
  const chars = Array.from(sub);
  const digest = base64url(
    new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(sub))),
  );
  const keep = MAX_NAME - EXTERNAL_NAME_PREFIX.length - 1 - digest.length;
  const fallback = `${EXTERNAL_NAME_PREFIX}${chars.slice(0, keep).join("")}#${digest}`;
  const preferred = chars.length + EXTERNAL_NAME_PREFIX.length < MAX_NAME
    ? `${EXTERNAL_NAME_PREFIX}${sub}`
    : fallback;
  return { preferred, fallback };
}

/** A new random JWT secret for development (kept under DATA_DIR by the caller). */
export function newJwtSecret(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(48)));
}
