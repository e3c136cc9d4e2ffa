/**
 * Browser-fetchable URLs for images, by URI scheme: https:// and http:// as they are, s3:// and
 * gs:// presigned (lib/media/s3.ts, lib/media/gcs.ts), file:// served by this server under
 * MEDIA_LOCAL_ROOT (lib/media/local.ts). A scheme with nothing configured answers why
 * (`unavailable`), never a broken URL. No secret ever appears in a URL: only signatures.
 */
import { createUrlTokens, type UrlTokens } from "../auth/url_tokens.ts";
import type { Config } from "../runtime/config.ts";
import { LOCAL_MEDIA_PREFIX, localUrlPath } from "./local.ts";
import type { CredentialProvider, ObjectSigner } from "./s3.ts";

/** SigV4's limit on X-Amz-Expires. */
export const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

/** Cloud Storage's XML API, where gs:// URLs point (lib/media/gcs.ts). */
export const GCS_XML_API = "https://storage.googleapis.com";

/**
 * A signer loaded when its scheme is configured, in the background from start-up: the AWS SDK
 * (client, presigner, credential providers) costs a process about 15 MiB of resident memory
 * (docs/decisions/0014-memory-under-mixed-load.md), which a server that signs no s3:// or gs://
 * URL does not pay. A URL asked for before it is ready waits for it.
 */
class LazySigner {
  #signer: ObjectSigner | undefined;
  readonly #ready: Promise<ObjectSigner>;
  constructor(load: () => Promise<ObjectSigner>) {
    this.#ready = load().then((s) => this.#signer = s);
    // A failure surfaces when a URL is asked for; never as an unhandled rejection.
    this.#ready.catch(() => {});
  }
  /** What is wrong with its credentials as last seen; nothing known while it loads. */
  problem(): string | undefined {
    return this.#signer?.problem();
  }
  sign(bucket: string, key: string, until: Date): Promise<MediaAnswer> {
    return this.#signer
      ? this.#signer.sign(bucket, key, until)
      : this.#ready.then((s) => s.sign(bucket, key, until));
  }
}

export interface MediaLink {
  url: string;
  /** The URL works until then. */
  expiresAt: Date;
}

export type MediaAnswer = MediaLink | { unavailable: string };

/** How long past the moment asked for a URL stays valid: a claim renewed late still shows. */
export const MEDIA_MARGIN_MS = 10 * 60_000;

export interface Media {
  /**
   * A URL for the bytes of the image at `uri`, valid at least until `until` plus MEDIA_MARGIN_MS
   * where it can be (at most 7 days, and not past temporary credentials' expiry); `origin` is the
   * server's own, for file:// URLs. Synchronous for every scheme but s3:// and gs://.
   */
  link(uri: string, until: Date, origin: string): MediaAnswer | Promise<MediaAnswer>;
  /**
   * Why `uri` cannot be served, or null when `link` should give a URL: without signing, for a
   * listing's many images (s3:// and gs:// are judged by the credentials last seen).
   */
  problem(uri: string): string | null;
  /** Tokens for the server's own URLs (file:// bytes, getImageMedia). */
  tokens: UrlTokens;
  /** Absolute; undefined: file:// is not served. */
  localRoot: string | undefined;
  now(): Date;
}

export interface MediaOptions {
  /** The clock (tests pin it). */
  now?: () => number;
  /** S3 credentials instead of the configured keys or the SDK's default chain. */
  s3Credentials?: CredentialProvider;
}

export function createMedia(config: Config, options: MediaOptions = {}): Media {
  const clock = options.now ?? Date.now;
  const { s3, gcs, localRoot } = config.media;
  if (!config.auth.jwtSecret) throw new Error("createMedia: no JWT secret");
  const tokens = createUrlTokens(config.auth.jwtSecret, config.auth.jwtAcceptedSecret);
  const s3Signer = s3 &&
    new LazySigner(async () => {
      const { ObjectSigner } = await import("./s3.ts");
      const chain = async () =>
        (await import("@aws-sdk/credential-providers")).fromNodeProviderChain();
      return new ObjectSigner({
        scheme: "s3",
        region: s3.region,
        endpoint: s3.endpoint,
        forcePathStyle: s3.forcePathStyle,
        credentials: options.s3Credentials ??
          (s3.credentials ? () => Promise.resolve(s3.credentials!) : await chain()),
        now: clock,
      });
    });
  const gcsSigner = gcs &&
    new LazySigner(async () => (await import("./gcs.ts")).createGcsSigner(gcs, clock));

  /**
   * s3://bucket/key and gs://bucket/key, split; the key is taken as written (no
   * percent-decoding), as the AWS CLI and gsutil read such URIs. A string: why it is not served.
   */
  function object(uri: string, scheme: "s3" | "gs") {
    const slash = uri.indexOf("/", scheme.length + 3);
    if (slash < 0 || slash === uri.length - 1 || slash === scheme.length + 3) {
      return `${uri} names no object (${scheme}://bucket/key)`;
    }
    const signer = scheme === "s3" ? s3Signer : gcsSigner;
    if (!signer) {
      const set = scheme === "s3"
        ? "AWS_REGION and credentials"
        : "GCS_HMAC_ACCESS_KEY_ID and GCS_HMAC_SECRET";
      return `no credentials for ${scheme}://: set ${set}`;
    }
    return { signer, bucket: uri.slice(scheme.length + 3, slash), key: uri.slice(slash + 1) };
  }

  const schemeOf = (uri: string) => uri.slice(0, uri.indexOf(":") + 1) || uri;
  // No array or string built per call: this runs on every claim.
  const objectScheme = (uri: string) =>
    uri.startsWith("s3://") ? "s3" : uri.startsWith("gs://") ? "gs" : undefined;

  return {
    tokens,
    localRoot,
    now: () => new Date(clock()),
    problem(uri) {
      if (uri.startsWith("https://") || uri.startsWith("http://")) return null;
      const scheme = objectScheme(uri);
      if (scheme) {
        const o = object(uri, scheme);
        return typeof o === "string" ? o : o.signer.problem() ?? null;
      }
      if (uri.startsWith("file://")) {
        if (!localRoot) return "file:// is not served: MEDIA_LOCAL_ROOT is not set";
        const local = localUrlPath(uri, localRoot);
        return "unavailable" in local ? local.unavailable : null;
      }
      return `${schemeOf(uri)} is not a served scheme`;
    },
    link(uri, until, origin) {
      const now = clock();
      const wanted = new Date(
        Math.min(until.getTime() + MEDIA_MARGIN_MS, now + MAX_PRESIGN_SECONDS * 1000),
      );
      if (uri.startsWith("https://") || uri.startsWith("http://")) {
        // The URL is the object's own: it does not expire through us.
        return { url: uri, expiresAt: wanted };
      }
      const scheme = objectScheme(uri);
      if (scheme) {
        const o = object(uri, scheme);
        return typeof o === "string" ? { unavailable: o } : o.signer.sign(o.bucket, o.key, wanted);
      }
      if (uri.startsWith("file://")) {
        if (!localRoot) {
          return { unavailable: "file:// is not served: MEDIA_LOCAL_ROOT is not set" };
        }
        const local = localUrlPath(uri, localRoot);
        if ("unavailable" in local) return local;
        const path = LOCAL_MEDIA_PREFIX + local.path;
        return {
          url: `${origin}${path}?token=${tokens.sign(path, wanted)}`,
          expiresAt: new Date(Math.floor(wanted.getTime() / 1000) * 1000),
        };
      }
      return { unavailable: `${schemeOf(uri)} is not a served scheme` };
    },
  };
}
