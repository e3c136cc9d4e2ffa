/** Images: registration in bulk, listing, priorities. */
import { createRoute, z } from "@hono/zod-openapi";
import { notFound, validationFailed } from "../lib/http/errors.ts";
import { errors, jsonBody, jsonBodyRef, jsonResponse, readJsonBody } from "../lib/http/openapi.ts";
import { createRouter } from "../lib/http/router.ts";
import { secured } from "../lib/http/security.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import * as ops from "../operations/images.ts";
import { mediaOperations, publicOrigin } from "../operations/media.ts";
import { Id, idParam } from "../schemas/common.ts";
import {
  ExternalId,
  Image,
  imageJson,
  ImagePage,
  ImageWithMedia,
  MediaQuery,
  RegisterEnvelope,
  RegisterImages,
  RegisterResult,
  SetPriorities,
  SetPrioritiesResult,
  UpdateImage,
} from "../schemas/images.ts";
import * as q from "../sql/images/queries.ts";
import { callerParams } from "../sql/users/queries.ts";

const datasetParams = z.object({ datasetId: idParam("datasetId") });
const imageParams = z.object({ imageId: idParam("imageId") });

const registerImagesRoute = createRoute({
  method: "post",
  path: "/datasets/{datasetId}/images",
  operationId: "registerImages",
  ...secured("admin", "machine"),
  tags: ["images"],
  summary: "Register up to 10,000 images (idempotent per external_id)",
  description: "An external_id already in the dataset creates nothing: it is counted in " +
    "`existing` and answered with the existing id, so a batch can be retried safely. " +
    "The batch is validated as a whole: one bad item rejects it and writes nothing.",
  // Validated by the handler while it inserts (registerPipelined), against RegisterImages.
  request: { params: datasetParams, body: jsonBodyRef("RegisterImages") },
  responses: {
    200: jsonResponse(RegisterResult, "Ids in request order"),
    ...errors(
      "invalid_dataset_id",
      "invalid_images",
      "malformed_json",
      401,
      403,
      "dataset_not_found",
      413,
      415,
    ),
  },
});

const listImagesRoute = createRoute({
  method: "get",
  path: "/datasets/{datasetId}/images",
  operationId: "listImages",
  ...secured("admin", "reviewer", "annotator", "machine"),
  tags: ["images"],
  summary: "Page through a dataset's images, oldest first, or find one by external_id",
  description: "With `external_id`, the page holds the one image with that external_id (the " +
    "client's own id, unique in the dataset), or none; its next_cursor is null.",
  request: {
    params: datasetParams,
    query: z.object({
      limit: z.coerce.number().int().min(1).max(1000).default(100),
      cursor: Id.optional().openapi({ description: "next_cursor from the previous page" }),
      media: MediaQuery,
      external_id: ExternalId.optional().openapi({
        description: "Only the image with this external_id: a page of 0 or 1 images",
      }),
    }),
  },
  responses: {
    200: jsonResponse(ImagePage, "A page of images"),
    ...errors("invalid_dataset_id", "invalid_limit", 401, "dataset_not_found"),
  },
});

const getImageRoute = createRoute({
  method: "get",
  path: "/images/{imageId}",
  operationId: "getImage",
  ...secured("admin", "reviewer", "annotator", "machine"),
  tags: ["images"],
  summary: "Get an image",
  request: { params: imageParams, query: z.object({ media: MediaQuery }) },
  responses: {
    200: jsonResponse(ImageWithMedia, "The image"),
    ...errors("invalid_image_id", 401, "image_not_found"),
  },
});

const updateImageRoute = createRoute({
  method: "patch",
  path: "/images/{imageId}",
  operationId: "updateImage",
  ...secured("admin", "machine"),
  tags: ["images"],
  summary: "Change an image's priority or metadata",
  request: { params: imageParams, body: jsonBody(UpdateImage) },
  responses: {
    200: jsonResponse(Image, "The updated image"),
    ...errors(
      "invalid_image_id",
      "no_image_change",
      "malformed_json",
      401,
      403,
      "image_not_found",
      413,
      415,
    ),
  },
});

const deleteImageRoute = createRoute({
  method: "delete",
  path: "/images/{imageId}",
  operationId: "deleteImage",
  // Admins only: deleting an image deletes its human annotations, which a machine client (an
  // ML model's credentials) must never be able to destroy.
  ...secured("admin"),
  tags: ["images"],
  summary: "Delete an image and all its annotations (admins only)",
  request: { params: imageParams },
  responses: {
    204: { description: "Deleted" },
    ...errors("invalid_image_id", 401, 403, "image_not_found"),
  },
});

const setPrioritiesRoute = createRoute({
  method: "put",
  path: "/datasets/{datasetId}/priorities",
  operationId: "setPriorities",
  ...secured("admin", "machine"),
  tags: ["images"],
  summary: "Set the priorities of up to 10,000 images",
  request: { params: datasetParams, body: jsonBody(SetPriorities) },
  responses: {
    200: jsonResponse(SetPrioritiesResult, "How many were set, and what matched nothing"),
    ...errors(
      "invalid_dataset_id",
      "invalid_priorities",
      "malformed_json",
      401,
      403,
      "dataset_not_found",
      413,
      415,
    ),
  },
});

export function imagesRouter(deps: Deps) {
  const { db } = deps;
  const media = mediaOperations(deps);
  const router = createRouter();
  // registerImages' body, declared by reference (jsonBodyRef).
  router.openAPIRegistry.register("RegisterImages", RegisterImages);
  return router
    .openapi(registerImagesRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const batch = RegisterEnvelope.safeParse(await readJsonBody(c));
      if (!batch.success) throw validationFailed(batch.error, "json");
      const rows = await ops.registerImages(db, datasetId, batch.data.images, c.get("principal"));
      const created = rows.filter((r) => r.created).length;
      return c.json({
        created,
        existing: rows.length - created,
        images: rows.map((r) => ({ id: r.id, external_id: r.external_id })),
      }, 200);
    })
    .openapi(listImagesRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const { media: withMedia, ...query } = c.req.valid("query");
      const page = await ops.listImages(db, datasetId, query, c.get("principal"));
      const origin = publicOrigin(deps, c.req.url);
      return c.json({
        items: withMedia === "true"
          ? page.items.map((i) => ({ ...imageJson(i), ...media.preview(i, origin) }))
          : page.items.map(imageJson),
        next_cursor: page.next_cursor,
      }, 200);
    })
    .openapi(getImageRoute, async (c) => {
      const { imageId } = c.req.valid("param");
      const image = await q.getImage(db, { id: imageId, ...callerParams(c.get("principal")) });
      if (!image) throw notFound(`image ${imageId}`);
      if (c.req.valid("query").media !== "true") return c.json(imageJson(image), 200);
      return c.json({
        ...imageJson(image),
        ...media.preview(image, publicOrigin(deps, c.req.url)),
      }, 200);
    })
    .openapi(updateImageRoute, async (c) => {
      const { imageId } = c.req.valid("param");
      const { priority, metadata } = c.req.valid("json");
      const image = await q.updateImage(db, {
        id: imageId,
        priority: priority ?? null,
        metadata: metadata ?? null,
        ...callerParams(c.get("principal")),
      });
      if (!image) throw notFound(`image ${imageId}`);
      return c.json(imageJson(image), 200);
    })
    .openapi(deleteImageRoute, async (c) => {
      const { imageId } = c.req.valid("param");
      const deleted = await q.deleteImage(db, { id: imageId, ...callerParams(c.get("principal")) });
      if (deleted === 0) throw notFound(`image ${imageId}`);
      return c.body(null, 204);
    })
    .openapi(setPrioritiesRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const { priorities } = c.req.valid("json");
      return c.json(await ops.setPriorities(db, datasetId, priorities, c.get("principal")), 200);
    });
}
