/**
 * Media on answers: the `media` of a claim (valid as long as its lease), of an image listing
 * (getImageMedia's URL with a token), and getImageMedia's redirect.
 */
import { ApiError, notFound } from "../lib/http/errors.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import { type MediaJson, mediaJson } from "../schemas/media.ts";
import * as images from "../sql/images/queries.ts";

/** How long a listing's media URLs (getImageMedia with a token) stay valid. */
export const PREVIEW_SECONDS = 3600;

/** The server's own origin as browsers reach it: PUBLIC_URL, else the request's. */
export function publicOrigin(deps: Deps, requestUrl: string): string {
  return deps.config.media.publicUrl ?? new URL(requestUrl).origin;
}

/** getImageMedia's path for an image: the path its tokens are signed for. */
export const imageMediaPath = (imageId: string) => `/api/v1/images/${imageId}/media`;

export interface MediaOperations {
  /** An image's media for an answer, valid until `until` plus a margin (a lease's expiry). */
  forImage(image: { uri: string }, until: Date, origin: string): Promise<MediaJson>;
  /**
   * An image's media for a listing, without signing anything: getImageMedia's URL with a token
   * valid PREVIEW_SECONDS, which redirects to the bytes when loaded (an http(s) URI as it is).
   */
  preview(image: { id: string; uri: string }, origin: string): MediaJson;
  /** Where getImageMedia redirects: a fresh URL of the image's bytes (404s otherwise). */
  redirectTarget(imageId: string, origin: string): Promise<string>;
}

export function mediaOperations(deps: Deps): MediaOperations {
  const { media, db } = deps;
  return {
    async forImage(image, until, origin) {
      return mediaJson(await media.link(image.uri, until, origin));
    },

    preview(image, origin) {
      const problem = media.problem(image.uri);
      if (problem) return { media: null, media_unavailable: problem };
      const expiresAt = new Date(media.now().getTime() + PREVIEW_SECONDS * 1000);
      if (image.uri.startsWith("https://") || image.uri.startsWith("http://")) {
        return { media: { url: image.uri, expires_at: expiresAt.toISOString() } };
      }
      const path = imageMediaPath(image.id);
      const token = media.tokens.sign(path, expiresAt);
      return {
        media: {
          url: `${origin}${path}?token=${token}`,
          expires_at: new Date(Math.floor(expiresAt.getTime() / 1000) * 1000).toISOString(),
        },
      };
    },

    async redirectTarget(imageId, origin) {
      const image = await images.getImage(db, { id: imageId });
      if (!image) throw notFound(`image ${imageId}`);
      const link = await media.link(image.uri, media.now(), origin);
      if ("unavailable" in link) throw new ApiError(404, "media_unavailable", link.unavailable);
      return link.url;
    },
  };
}
