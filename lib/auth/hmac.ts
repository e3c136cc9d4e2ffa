/**
 * HMAC-SHA256 with keys that are used again and again: the URL tokens' key, a presign's secret
 * access key and day's signing key (lib/media/s3.ts), a webhook's signing keys
 * (lib/webhooks/signing.ts).
 */
import { Buffer } from "node:buffer";
import { createHash, type Hash } from "node:crypto";

/**
 * HMAC-SHA256 (RFC 2104) with a fixed key, from the two SHA-256 states after the key's inner and
 * outer pad blocks, copied for each message: node:crypto's createHmac derives the pads again on
 * every call (12.8 µs a MAC in Deno 2.9.6, against 4.9 µs so; tests/media_signing_test.ts checks
 * it against createHmac and RFC 4231).
 */
export class FixedKeyHmac {
  #inner: Hash;
  #outer: Hash;
  constructor(key: Uint8Array) {
    const block = new Uint8Array(64);
    block.set(key.length > 64 ? createHash("sha256").update(key).digest() : key);
    this.#inner = createHash("sha256").update(block.map((b) => b ^ 0x36));
    this.#outer = createHash("sha256").update(block.map((b) => b ^ 0x5c));
  }
  digest(message: string | Uint8Array): Buffer {
    return this.finish(this.start().update(message));
  }
  /** A hash to feed a message into, in as many pieces as it comes, for `finish`. */
  start(): Hash {
    return this.#inner.copy();
  }
  /** The MAC of what `start`'s hash was fed. */
  finish(inner: Hash): Buffer {
    return this.#outer.copy().update(inner.digest()).digest();
  }
}

/** Keys kept: a few per day for presigning, one or two per webhook. Past this, all are dropped. */
const KEPT_KEYS = 256;
const kept = new Map<string, FixedKeyHmac>();

/**
 * The FixedKeyHmac of `key` (a string: its UTF-8 bytes), kept by the key's content: callers get
 * the same few keys again as fresh strings and byte arrays (a webhook's keys come with each of its
 * deliveries' rows), and derive the pads once per key.
 */
export function hmacForKey(key: string | Uint8Array): FixedKeyHmac {
  const id = typeof key === "string"
    ? `s${key}`
    : `b${Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("base64")}`;
  let hmac = kept.get(id);
  if (!hmac) {
    if (kept.size >= KEPT_KEYS) kept.clear();
    hmac = new FixedKeyHmac(typeof key === "string" ? Buffer.from(key, "utf8") : key);
    kept.set(id, hmac);
  }
  return hmac;
}
