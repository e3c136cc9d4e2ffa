/**
 * Media on answers: the `media` of a claim (valid as long as its lease), of an image listing
 * (getImageMedia's URL with a token), and getImageMedia's redirect.
 */
import { ApiError, notFound } from "../lib/http/errors.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import { type MediaJson, mediaJson } from "../schemas/media.ts";
import * as images from "../sql/images/queries.ts";
import { type CallerParams, callerParams, type Principal } from "../sql/users/queries.ts";

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
  /**
   * Where getImageMedia redirects: a fresh URL of the image's bytes (404s otherwise, also for an
   * image in a dataset the caller may not see). `caller` null: the request carried the URL's
   * token instead of a bearer.
   */
  redirectTarget(imageId: string, origin: string, caller: Principal | null): Promise<string>;
}

/**
 * Who a URL token (preview) stands for: this server signed it for this image's path when it showed
 * the image to a caller who saw its dataset, and it opens that image only, for PREVIEW_SECONDS at
 * most. Like a presigned bucket URL, it keeps working that long after its receiver stops seeing
 * the dataset; so the statement reads the image as an admin would (may_see_dataset).
 */
const URL_TOKEN_HOLDER: CallerParams = { caller_id: "0", caller_role: "admin" };

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

    async redirectTarget(imageId, origin, caller) {
      const who = caller ? callerParams(caller) : URL_TOKEN_HOLDER;
      const image = await images.getImage(db, { id: imageId, ...who });
      if (!image) throw notFound(`image ${imageId}`);
      const link = await media.link(image.uri, media.now(), origin);
      if ("unavailable" in link) throw new ApiError(404, "media_unavailable", link.unavailable);
      return link.url;
    },
  };
}
