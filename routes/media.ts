/**
 * Media: getImageMedia (a redirect to an image's bytes, for an `<img src>`), and the bytes of
 * file:// images under MEDIA_LOCAL_ROOT at /media/local/… (signed URLs only; not an API operation,
 * as a bucket's URLs are not).
 */
import { createRoute, z } from "@hono/zod-openapi";
import { Hono } from "hono";
import { rawPath } from "../lib/auth/url_tokens.ts";
import { ApiError } from "../lib/http/errors.ts";
import { errors } from "../lib/http/openapi.ts";
import { createRouter } from "../lib/http/router.ts";
import { securedOrUrlToken } from "../lib/http/security.ts";
import {
  LOCAL_MEDIA_PREFIX,
  localFileResponse,
  localSegments,
  resolveLocalFile,
} from "../lib/media/local.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import { mediaOperations, publicOrigin } from "../operations/media.ts";
import { idParam } from "../schemas/common.ts";

const getImageMediaRoute = createRoute({
  method: "get",
  path: "/images/{imageId}/media",
  operationId: "getImageMedia",
  ...securedOrUrlToken("admin", "reviewer", "annotator", "machine"),
  tags: ["images"],
  summary: "Redirect to the image's bytes (for an <img src>)",
  description: "Answers 302 to a fresh URL a browser loads with no header: presigned for " +
    "s3:// and gs://, the URI itself for http(s)://, this server's own for file://. Accepts a " +
    "bearer token, or the `token` query parameter of a URL the server handed out (listImages " +
    "and getImage with `media=true`), which opens this image only, until it expires. 404 " +
    "`media_unavailable` when the URI's scheme has no configured way to be served.",
  request: { params: z.object({ imageId: idParam("imageId") }) },
  responses: {
    302: {
      description: "To the image's bytes",
      headers: z.object({
        location: z.string().openapi({ description: "A URL valid 10 minutes" }),
      }),
    },
    ...errors(
      "invalid_image_id",
      "unauthorized",
      "invalid_token",
      "url_token_expired",
      "forbidden",
      "url_token_invalid",
      "image_not_found",
      "media_unavailable",
    ),
  },
});

export function mediaRouter(deps: Deps) {
  const ops = mediaOperations(deps);
  return createRouter().openapi(getImageMediaRoute, async (c) => {
    const { imageId } = c.req.valid("param");
    c.header("cache-control", "private, no-store");
    // No principal: the request carried the URL's token (securedOrUrlToken).
    const caller = c.get("principal") ?? null;
    const target = await ops.redirectTarget(imageId, publicOrigin(deps, c.req.url), caller);
    return c.redirect(target, 302);
  });
}

/** GET (and HEAD) /media/local/<path>?token=…: 404 for any path not served, then the token. */
export function localMediaRouter(deps: Deps) {
  const { media } = deps;
  // A named pattern rather than `*`, so metrics and logs label these requests with it, not as
  // "unmatched"; the handler reads the raw path itself.
  return new Hono().get(`${LOCAL_MEDIA_PREFIX}:path{.+}`, async (c) => {
    const root = media.localRoot;
    const path = rawPath(c.req.url);
    if (!root) {
      throw new ApiError(404, "not_found", "file:// media is not served (MEDIA_LOCAL_ROOT)");
    }
    const segments = localSegments(path.slice(LOCAL_MEDIA_PREFIX.length));
    const token = c.req.query("token");
    const check = token === undefined ? "missing" : media.tokens.check(path, token, media.now());
    if (check === "expired") {
      throw new ApiError(401, "token_expired", "the URL's token has expired: ask for a new URL");
    }
    if (check !== "ok") {
      throw new ApiError(403, "invalid_token", "the URL's token is missing or not valid for it");
    }
    const file = await resolveLocalFile(root, segments);
    const expires = Number(token!.slice(0, token!.indexOf(".")));
    return await localFileResponse(
      file,
      c.req.raw,
      expires - Math.ceil(media.now().getTime() / 1000),
    );
  });
}
