/**
 * Where the media URLs this server hands out point, as Content-Security-Policy source
 * expressions: the annotator page's `img-src` allows exactly these besides its own origin.
 *
 * - file:// images: this server, at PUBLIC_URL when set (else the page's own origin, 'self').
 * - s3://: the host the AWS SDK's endpoint rules pick (lib/media/s3.ts), virtual-hosted
 *   `<bucket>.s3.<region>.amazonaws.com` or, for bucket names with dots, path-style
 *   `s3.<region>.amazonaws.com`; with AWS_ENDPOINT_URL_S3, that endpoint (and its bucket
 *   subdomains unless S3_FORCE_PATH_STYLE).
 * - gs://: Cloud Storage's XML API (lib/media/gcs.ts).
 * - http(s):// URIs are handed out as they are: their origins are the operator's to list in
 *   MEDIA_ORIGINS.
 */
import type { MediaConfig } from "../runtime/config.ts";
import { GCS_XML_API } from "./index.ts";

export function mediaOrigins(media: MediaConfig): string[] {
  const origins = new Set<string>();
  if (media.publicUrl) origins.add(new URL(media.publicUrl).origin);
  if (media.s3) {
    if (media.s3.endpoint) {
      const endpoint = new URL(media.s3.endpoint);
      origins.add(endpoint.origin);
      if (!media.s3.forcePathStyle) origins.add(`${endpoint.protocol}//*.${endpoint.host}`);
    } else {
      origins.add(`https://s3.${media.s3.region}.amazonaws.com`);
      origins.add(`https://*.s3.${media.s3.region}.amazonaws.com`);
    }
  }
  if (media.gcs) origins.add(GCS_XML_API);
  for (const origin of media.origins) origins.add(origin);
  return [...origins];
}
