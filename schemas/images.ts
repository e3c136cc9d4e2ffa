/** Images: registration in bulk, pages, priorities. */
import { z } from "@hono/zod-openapi";
import type * as q from "../sql/images/queries.ts";
import {
  Finite,
  Id,
  JsonObject,
  MAX_BATCH,
  Name,
  ONE_IMAGE_REF,
  Timestamp,
  WHITESPACE,
} from "./common.ts";
import { Media } from "./media.ts";

/** A scheme the server knows, then no whitespace (as trim sees it) and no NUL. */
const URI = new RegExp(`^(?:s3|gs|https?|file)://[^${WHITESPACE}\\u0000]+$`);

export const Uri = z.string().max(2048, "must be at most 2048 characters").regex(
  URI,
  "must be an s3://, gs://, https://, http:// or file:// URI without spaces",
).openapi({ example: "s3://bucket/images/0001.jpg" });

export const ExternalId = Name(256).openapi({
  description: "The client's own id for the image, unique in the dataset",
  example: "frame-0001",
});

const Dimension = z.number().int().min(1).max(1_000_000);

const Priority = Finite.openapi({
  description: "Higher means annotate sooner",
  example: 0.87,
});

export const ImageStatus = z.enum(["pending", "in_progress", "done", "in_review", "accepted"])
  .openapi({
    description: "pending: it needs a human annotation and has a free slot (a rejected image is " +
      "pending again). in_progress: every remaining slot is under a live claim. done: it has " +
      "its annotations_per_image human annotations and was not selected for review. in_review: " +
      "it has them and waits for a reviewer (the dataset's review_rate selected it). accepted: a " +
      "reviewer accepted or fixed its annotations.",
  });

export const Image = z.object({
  id: Id,
  dataset_id: Id,
  external_id: z.string().nullable(),
  uri: z.string(),
  width: z.number().int().nullable(),
  height: z.number().int().nullable(),
  priority: z.number(),
  metadata: z.record(z.string(), z.unknown()),
  status: ImageStatus,
  created_at: Timestamp,
}).openapi("Image");

/** getImage and listImages answer media only when asked (`media=true`). */
export const ImageWithMedia = Image.extend({
  media: Media.nullable().optional().openapi({
    description: "With `media=true`: getImageMedia's URL with a token valid an hour (it " +
      "redirects to the bytes; an http(s) URI is given as it is), or null when the URI's scheme " +
      "has no configured way to be served (media_unavailable says why)",
  }),
  media_unavailable: z.string().optional(),
}).openapi("ImageWithMedia");

/** `?media=true`: include media in the answer. */
export const MediaQuery = z.enum(["true", "false"]).optional().openapi({
  description: "`true`: each image carries `media`, a URL a browser can load",
});

export const NewImage = z.strictObject({
  uri: Uri,
  external_id: ExternalId.nullable().optional(),
  width: Dimension.nullable().optional(),
  height: Dimension.nullable().optional(),
  priority: Priority.optional(),
  metadata: JsonObject.optional(),
}).superRefine((image, ctx) => {
  // Both or neither: shapes are checked against a known size, and half a size is not one.
  const hasWidth = image.width != null;
  const hasHeight = image.height != null;
  if (hasWidth !== hasHeight) {
    ctx.addIssue({
      code: "custom",
      path: [hasWidth ? "height" : "width"],
      message: `required with ${
        hasWidth ? "width" : "height"
      }: give both width and height, or neither`,
    });
  }
}).openapi("NewImage", {
  description: "`width` and `height` are given together or not at all",
  // The superRefine above: both integers, or each absent or null.
  anyOf: [
    {
      required: ["width", "height"],
      properties: { width: { type: "integer" }, height: { type: "integer" } },
    },
    { properties: { width: { type: "null" }, height: { type: "null" } } },
  ],
});

/** A registerImages body of `item`s: NewImage for the spec, unknown for the handler's first look. */
const batchOf = <T extends z.ZodType>(item: T) =>
  z.strictObject({
    images: z.array(item).min(1, "must contain at least 1 image").max(
      MAX_BATCH,
      `must contain at most ${MAX_BATCH} images`,
    ),
  });
export const RegisterImages = batchOf(NewImage).openapi("RegisterImages");
/** The body with its items not yet checked: registerPipelined checks them a chunk at a time. */
export const RegisterEnvelope = batchOf(z.unknown());
export const ImageChunk = z.array(NewImage);

export const RegisterResult = z.object({
  created: z.number().int(),
  existing: z.number().int(),
  images: z.array(z.object({ id: Id, external_id: z.string().nullable() })).openapi({
    description: "One entry per request item, in request order",
  }),
}).openapi("RegisterImagesResult");

export const ImagePage = z.object({
  items: z.array(ImageWithMedia),
  next_cursor: z.string().nullable().openapi({
    description: "Pass as `cursor` for the next page; null on the last page",
  }),
}).openapi("ImagePage");

export const UpdateImage = z.strictObject({
  priority: Priority.optional(),
  metadata: JsonObject.optional(),
}).refine((b) => b.priority !== undefined || b.metadata !== undefined, {
  message: "give priority and/or metadata",
}).openapi("UpdateImage", { minProperties: 1 });

export const PriorityItem = z.strictObject({
  image_id: Id.optional(),
  external_id: ExternalId.optional(),
  priority: Priority,
}).refine((p) => (p.image_id === undefined) !== (p.external_id === undefined), {
  message: "give exactly one of image_id and external_id",
}).openapi("PriorityItem", { oneOf: ONE_IMAGE_REF });

export const SetPriorities = z.strictObject({
  priorities: z.array(PriorityItem).min(1, "must contain at least 1 item").max(
    MAX_BATCH,
    `must contain at most ${MAX_BATCH} items`,
  ),
}).openapi("SetPriorities");

export const SetPrioritiesResult = z.object({
  updated: z.number().int().openapi({ description: "Images whose priority was set" }),
  not_found: z.array(z.object({ image_id: Id.optional(), external_id: z.string().optional() }))
    .openapi({ description: "The items that matched no image in this dataset, as given" }),
}).openapi("SetPrioritiesResult");

export function imageJson(i: q.Image): z.infer<typeof Image> {
  return {
    id: i.id,
    dataset_id: i.dataset_id,
    external_id: i.external_id,
    uri: i.uri,
    width: i.width,
    height: i.height,
    priority: i.priority,
    metadata: i.metadata,
    status: i.status,
    created_at: i.created_at.toISOString(),
  };
}
