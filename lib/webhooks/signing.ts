/**
 * Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`
 * with the key behind `whsec_<base64>`, one signature per key in force, space-separated (during
 * a rotation, the old key's beside the new one's). The tests check them with the npm
 * `standardwebhooks` package, an independent implementation.
 */
import { decodeBase64, encodeBase64 } from "./base64.ts";

/** Bytes of a new signing key: 32 (the specification asks for 24 to 64). */
const SECRET_BYTES = 32;

/** A new random signing key. */
export function newSecret(): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(SECRET_BYTES));
}

/** A key as receivers are given it: `whsec_<base64>`. */
export function secretText(key: Uint8Array): string {
  return `whsec_${encodeBase64(key)}`;
}

/** The key of a `whsec_…` text. */
export function secretBytes(text: string): Uint8Array<ArrayBuffer> {
  return decodeBase64(text.replace(/^whsec_/, ""));
}

const encoder = new TextEncoder();

/** HMAC keys imported once per key (their base64 text as the cache key). */
const imported = new Map<string, Promise<CryptoKey>>();

function hmacKey(key: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  const id = encodeBase64(key);
  let k = imported.get(id);
  if (!k) {
    // A few keys per webhook over its life: bounded by clearing, not by eviction order.
    if (imported.size > 1000) imported.clear();
    k = crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    imported.set(id, k);
  }
  return k;
}

/** The webhook-signature header for `body` sent as event `id` at `timestamp` (Unix seconds). */
export async function signatureHeader(
  keys: Uint8Array<ArrayBuffer>[],
  id: string,
  timestamp: number,
  body: string,
): Promise<string> {
  const content = encoder.encode(`${id}.${timestamp}.${body}`);
  const signatures = await Promise.all(keys.map(async (key) => {
    const mac = await crypto.subtle.sign("HMAC", await hmacKey(key), content);
    return `v1,${encodeBase64(new Uint8Array(mac))}`;
  }));
  return signatures.join(" ");
}
