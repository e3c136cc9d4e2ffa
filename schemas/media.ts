/** Media: where a browser loads an image's bytes from (lib/media/). */
import { z } from "@hono/zod-openapi";
import type { MediaAnswer } from "../lib/media/index.ts";
import { Timestamp } from "./common.ts";

export const Media = z.object({
  url: z.string().openapi({
    description: "Loads the image in a browser with no header at all (an `<img src>`): a " +
      "presigned s3:// or gs:// URL, an https:// URI as registered, or this server's own URL " +
      "for file:// images",
    example: "https://bucket.s3.eu-west-1.amazonaws.com/images/0001.jpg?X-Amz-Algorithm=…",
  }),
  expires_at: Timestamp.openapi({ description: "The URL works until then" }),
}).openapi("Media");

/** The fields an answer about an image carries: `media`, and why it is null when it is. */
export const MediaFields = {
  media: Media.nullable().openapi({
    description: "null when the image's URI scheme has no configured way to be served " +
      "(media_unavailable says why)",
  }),
  media_unavailable: z.string().optional().openapi({
    description: "Why media is null, e.g. `no credentials for s3://: …`",
    example: "no credentials for s3://: set AWS_REGION and credentials",
  }),
};

export type MediaJson =
  | { media: z.infer<typeof Media>; media_unavailable?: undefined }
  | { media: null; media_unavailable: string };

export function mediaJson(answer: MediaAnswer): MediaJson {
  return "unavailable" in answer
    ? { media: null, media_unavailable: answer.unavailable }
    : { media: { url: answer.url, expires_at: answer.expiresAt.toISOString() } };
}
