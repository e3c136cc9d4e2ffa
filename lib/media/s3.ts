/**
 * Presigned GETs for objects in S3 and S3-compatible stores (MinIO, Ceph, R2, and Cloud Storage's
 * XML API: lib/media/gcs.ts), made by the AWS SDK: its endpoint rules pick the host (virtual-hosted
 * or path-style, the region's, AWS_ENDPOINT_URL_S3's) and its SigV4 presigner signs
 * (`X-Amz-SignedHeaders=host`, so a browser needs no header).
 *
 * Signing is local CPU work, no network call per URL. The SDK's `getSignedUrl` runs the whole
 * command middleware stack for each URL (164 µs a URL in Deno 2.9.6); this module resolves a bucket's
 * endpoint once, then hands the presigner a plain request and its own SHA-256 (PresignHash): 30–32
 * µs a URL (bench/experiments/media_signing.ts).
 * Credentials are resolved ahead of need and kept (CredentialCache), so a claim never waits on
 * the credential chain except for the very first one.
 */
import { createHash, type Hash } from "node:crypto";
import { S3Client } from "@aws-sdk/client-s3";
import { S3RequestPresigner } from "@aws-sdk/s3-request-presigner";
import { type FixedKeyHmac, hmacForKey } from "../auth/hmac.ts";
import { MAX_PRESIGN_SECONDS, type MediaAnswer } from "./index.ts";

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** When temporary credentials stop working (and every URL signed with them). */
  expiration?: Date;
}

/** The AWS SDK's credential provider shape (`fromNodeProviderChain()`, a static set). */
export type CredentialProvider = () => Promise<AwsCredentials>;

/** How often the provider is asked again while its credentials are good, and after a failure. */
const RECHECK_MS = 60_000;
const RETRY_AFTER_FAILURE_MS = 30_000;
/** Credentials with less left than this are not used: a URL signed with them would die first. */
const MIN_LEFT_MS = 60_000;

/**
 * The latest credentials from a provider. `get()` answers at once from what it holds while they
 * have more than MIN_LEFT_MS left, asking the provider again in the background at most every
 * RECHECK_MS (the SDK's chain is memoized: it refreshes temporary credentials 5 minutes before
 * they expire and answers from memory otherwise). Only when nothing usable is held does a caller
 * wait for the provider; a failure is kept RETRY_AFTER_FAILURE_MS, so a server without
 * credentials answers "unavailable" at once instead of walking the chain on every claim.
 */
class CredentialCache {
  #current: AwsCredentials | undefined;
  #problem = "not resolved yet";
  #pending: Promise<void> | undefined;
  #askAfter = 0;

  constructor(private provider: CredentialProvider, private now: () => number) {
    this.#refresh();
  }

  #usable(c: AwsCredentials | undefined, now: number): c is AwsCredentials {
    return c !== undefined && (!c.expiration || c.expiration.getTime() - now > MIN_LEFT_MS);
  }

  #refresh(): Promise<void> {
    this.#pending ??= this.provider().then(
      (c) => {
        this.#current = c;
        this.#askAfter = this.now() + RECHECK_MS;
      },
      (e: Error) => {
        this.#problem = e.message.split("\n")[0] || e.name;
        this.#askAfter = this.now() + RETRY_AFTER_FAILURE_MS;
      },
    ).finally(() => this.#pending = undefined);
    return this.#pending;
  }

  /** Why there are no usable credentials, when that is known without asking (sync). */
  problem(): string | undefined {
    return this.#usable(this.#current, this.now()) || this.#pending ? undefined : this.#problem;
  }

  /** Credentials good for at least MIN_LEFT_MS more, or why there are none. */
  async get(): Promise<AwsCredentials | string> {
    const now = this.now();
    if (this.#usable(this.#current, now)) {
      if (now >= this.#askAfter) void this.#refresh();
      return this.#current;
    }
    if (this.#pending || now >= this.#askAfter) await this.#refresh();
    return this.#usable(this.#current, this.now()) ? this.#current : this.#problem;
  }
}

export interface ObjectSignerOptions {
  /** The URI scheme, for messages: `s3` or `gs`. */
  scheme: string;
  region: string;
  endpoint: string | undefined;
  forcePathStyle: boolean;
  credentials: CredentialProvider;
  now?: () => number;
}

interface BucketEndpoint {
  protocol: string;
  hostname: string;
  port: number | undefined;
  host: string;
  /** The path before the key: "" (virtual-hosted) or "/bucket" (path-style). */
  base: string;
  signingRegion: string;
}

/** A key as the SDK's serializer writes it: each segment percent-encoded, "/" kept. */
function encodeKey(key: string): string {
  return key.split("/").map((s) =>
    encodeURIComponent(s).replace(
      /[!'()*]/g,
      (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    )
  ).join("/");
}

/** The kept HMAC of a presign's key: a secret access key (a string) or a day's signing key. */
function hmacFor(secret: string | ArrayBuffer | ArrayBufferView): FixedKeyHmac {
  return hmacForKey(
    typeof secret === "string"
      ? secret
      : ArrayBuffer.isView(secret)
      ? new Uint8Array(secret.buffer, secret.byteOffset, secret.byteLength)
      : new Uint8Array(secret),
  );
}

/**
 * SHA-256 for the SDK's SigV4 presigner (its `sha256` option; with a secret, HMAC-SHA256). A
 * presign computes one hash and two HMACs: the cache key of its signing key (keyed by the secret
 * access key) and the signature (keyed by the day's signing key). The SDK's own hash makes each
 * HMAC with node:crypto's createHmac, which derives the key's pads again every time (10 µs a call
 * in Deno 2.9.6); FixedKeyHmac derives them once per key (4.9 µs). A presign went from 39–42 to
 * 30–32 µs (bench/experiments/media_signing.ts; decision 0028).
 */
class PresignHash {
  readonly #hmac: FixedKeyHmac | undefined;
  #hash: Hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#hmac = secret === undefined ? undefined : hmacFor(secret);
    this.#hash = this.#start();
  }
  #start(): Hash {
    return this.#hmac ? this.#hmac.start() : createHash("sha256");
  }
  update(chunk: Uint8Array): void {
    this.#hash.update(chunk);
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(this.#hmac ? this.#hmac.finish(this.#hash) : this.#hash.digest());
  }
  reset(): void {
    this.#hash = this.#start();
  }
}

// Shared by every call: the presigner only ever adds "content-type" to the first.
const UNSIGNED = { unsignable: new Set(["x-amz-content-sha256"]) };

export class ObjectSigner {
  #client: S3Client;
  #presigner: S3RequestPresigner;
  #credentials: CredentialCache;
  #endpoints = new Map<string, Promise<BucketEndpoint>>();
  #signWith: AwsCredentials | undefined;
  #now: () => number;

  constructor(private options: ObjectSignerOptions) {
    this.#now = options.now ?? Date.now;
    this.#client = new S3Client({
      region: options.region,
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle,
      credentials: options.credentials,
    });
    this.#credentials = new CredentialCache(options.credentials, this.#now);
    this.#presigner = new S3RequestPresigner({
      ...this.#client.config,
      sha256: PresignHash,
      // The credentials `sign` checked just before calling presign: SignatureV4.presign calls
      // this provider synchronously, before its first await, so concurrent signs cannot mix.
      credentials: () => Promise.resolve(this.#signWith!),
    });
  }

  /** The bucket's host and signing region, by the SDK's endpoint rules; cached per bucket. */
  #endpoint(bucket: string): Promise<BucketEndpoint> {
    let found = this.#endpoints.get(bucket);
    if (!found) {
      const config = this.#client.config;
      found = (async () => {
        const { url, properties } = await config.endpointProvider({
          Bucket: bucket,
          Region: this.options.region,
          Endpoint: this.options.endpoint,
          ForcePathStyle: this.options.forcePathStyle,
          UseFIPS: await config.useFipsEndpoint(),
          UseDualStack: await config.useDualstackEndpoint(),
          Accelerate: false,
          UseGlobalEndpoint: false,
        });
        const auth = (properties?.authSchemes as { signingRegion?: string }[] | undefined)?.[0];
        return {
          protocol: url.protocol,
          hostname: url.hostname,
          port: url.port ? Number(url.port) : undefined,
          host: url.host,
          base: url.pathname.replace(/\/$/, ""),
          signingRegion: auth?.signingRegion ?? this.options.region,
        };
      })();
      // Bucket names come from registered URIs: bounded by the buckets a deployment uses, but
      // cleared past 10,000 so odd URIs cannot grow it without limit.
      if (this.#endpoints.size >= 10_000) this.#endpoints.clear();
      this.#endpoints.set(bucket, found);
      found.catch(() => this.#endpoints.delete(bucket));
    }
    return found;
  }

  /** Why this signer cannot sign now, when known without waiting: "no credentials for …". */
  problem(): string | undefined {
    const p = this.#credentials.problem();
    return p && `no credentials for ${this.options.scheme}://: ${p}`;
  }

  /**
   * A presigned GET of `key` in `bucket` that works until `until` if it can: at most 7 days, and
   * never past the expiry of the credentials that signed it (`expiresAt` says which).
   */
  async sign(bucket: string, key: string, until: Date): Promise<MediaAnswer> {
    const credentials = await this.#credentials.get();
    if (typeof credentials === "string") {
      return { unavailable: `no credentials for ${this.options.scheme}://: ${credentials}` };
    }
    let ep: BucketEndpoint;
    try {
      ep = await this.#endpoint(bucket);
    } catch (e) {
      return {
        unavailable: `cannot sign ${this.options.scheme}://${bucket}/: ${(e as Error).message}`,
      };
    }
    const now = this.#now();
    let expiresMs = Math.min(until.getTime(), now + MAX_PRESIGN_SECONDS * 1000);
    if (credentials.expiration) expiresMs = Math.min(expiresMs, credentials.expiration.getTime());
    const expiresIn = Math.max(1, Math.ceil((expiresMs - now) / 1000));
    this.#signWith = credentials;
    const signed = await this.#presigner.presign({
      method: "GET",
      protocol: ep.protocol,
      hostname: ep.hostname,
      port: ep.port,
      path: `${ep.base}/${encodeKey(key)}`,
      query: {},
      headers: { host: ep.host },
    }, {
      expiresIn,
      signingDate: new Date(now),
      signingRegion: ep.signingRegion,
      // Neither signed nor in the query: the presigner's "UNSIGNED-PAYLOAD" marker stays the
      // payload hash, and the URL is AWS's documented form (tests/media_signing_test.ts).
      unsignableHeaders: UNSIGNED.unsignable,
      unhoistableHeaders: UNSIGNED.unsignable,
    });
    let query = "";
    for (const [k, v] of Object.entries(signed.query ?? {})) {
      query += `${query ? "&" : "?"}${k}=${encodeURIComponent(v as string)}`;
    }
    return {
      url: `${ep.protocol}//${ep.host}${signed.path}${query}`,
      expiresAt: new Date(now + expiresIn * 1000),
    };
  }
}
