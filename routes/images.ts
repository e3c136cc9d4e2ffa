/** Images: registration in bulk, listing, priorities. */
import { setImmediate } from "node:timers";
import { createRoute, z } from "@hono/zod-openapi";
import { secured } from "../lib/auth/tokens.ts";
import { isPgError, transaction } from "../lib/db/query.ts";
import { ApiError, MAX_ISSUES, notFound, validationFailed } from "../lib/http/errors.ts";
import { createRouter, type Deps } from "../lib/http/router.ts";
import {
  errors,
  Finite,
  Id,
  idParam,
  jsonBody,
  jsonBodyRef,
  JsonObject,
  jsonResponse,
  Name,
  readJsonBody,
  Timestamp,
} from "../lib/http/openapi.ts";
import * as q from "../sql/images/queries.ts";
import { requireDataset } from "./datasets.ts";

export const MAX_BATCH = 10_000;

const Uri = Name(2048).refine(
  (s) => /^(s3|gs|https?|file):\/\/\S+$/.test(s),
  "must be an s3://, gs://, https://, http:// or file:// URI without spaces",
).openapi({ example: "s3://bucket/images/0001.jpg" });

const ExternalId = Name(256).openapi({
  description: "The client's own id for the image, unique in the dataset",
  example: "frame-0001",
});

const Dimension = z.number().int().min(1).max(1_000_000);

const Priority = Finite.openapi({
  description: "Higher means annotate sooner",
  example: 0.87,
});

export const ImageStatus = z.enum(["pending", "in_progress", "done"]);

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

const NewImage = z.strictObject({
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
});

/** A registerImages body of `item`s: NewImage for the spec, unknown for the handler's first look. */
const batchOf = <T extends z.ZodType>(item: T) =>
  z.strictObject({
    images: z.array(item).min(1, "must contain at least 1 image").max(
      MAX_BATCH,
      `must contain at most ${MAX_BATCH} images`,
    ),
  });
const RegisterImages = batchOf(NewImage).openapi("RegisterImages");
/** The body with its items not yet checked: registerPipelined checks them a chunk at a time. */
const RegisterEnvelope = batchOf(z.unknown());
const ImageChunk = z.array(NewImage);

const RegisterResult = z.object({
  created: z.number().int(),
  existing: z.number().int(),
  images: z.array(z.object({ id: Id, external_id: z.string().nullable() })).openapi({
    description: "One entry per request item, in request order",
  }),
}).openapi("RegisterImagesResult");

const ImagePage = z.object({
  items: z.array(Image),
  next_cursor: z.string().nullable().openapi({
    description: "Pass as `cursor` for the next page; null on the last page",
  }),
}).openapi("ImagePage");

const UpdateImage = z.strictObject({
  priority: Priority.optional(),
  metadata: JsonObject.optional(),
}).refine((b) => b.priority !== undefined || b.metadata !== undefined, {
  message: "give priority and/or metadata",
}).openapi("UpdateImage");

const PriorityItem = z.strictObject({
  image_id: Id.optional(),
  external_id: ExternalId.optional(),
  priority: Priority,
}).refine((p) => (p.image_id === undefined) !== (p.external_id === undefined), {
  message: "give exactly one of image_id and external_id",
}).openapi("PriorityItem");

const SetPriorities = z.strictObject({
  priorities: z.array(PriorityItem).min(1, "must contain at least 1 item").max(
    MAX_BATCH,
    `must contain at most ${MAX_BATCH} items`,
  ),
}).openapi("SetPriorities");

const SetPrioritiesResult = z.object({
  updated: z.number().int().openapi({ description: "Images whose priority was set" }),
  not_found: z.array(z.object({ image_id: Id.optional(), external_id: z.string().optional() }))
    .openapi({ description: "The items that matched no image in this dataset, as given" }),
}).openapi("SetPrioritiesResult");

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
    ...errors(400, 401, 403, 404, 413, 415),
  },
});

const listImagesRoute = createRoute({
  method: "get",
  path: "/datasets/{datasetId}/images",
  operationId: "listImages",
  ...secured("admin", "annotator", "machine"),
  tags: ["images"],
  summary: "Page through a dataset's images, oldest first",
  request: {
    params: datasetParams,
    query: z.object({
      limit: z.coerce.number().int().min(1).max(1000).default(100),
      cursor: Id.optional().openapi({ description: "next_cursor from the previous page" }),
    }),
  },
  responses: {
    200: jsonResponse(ImagePage, "A page of images"),
    ...errors(400, 401, 403, 404),
  },
});

const getImageRoute = createRoute({
  method: "get",
  path: "/images/{imageId}",
  operationId: "getImage",
  ...secured("admin", "annotator", "machine"),
  tags: ["images"],
  summary: "Get an image",
  request: { params: imageParams },
  responses: { 200: jsonResponse(Image, "The image"), ...errors(400, 401, 403, 404) },
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
    ...errors(400, 401, 403, 404, 413, 415),
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
  responses: { 204: { description: "Deleted" }, ...errors(400, 401, 403, 404) },
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
    ...errors(400, 401, 403, 404, 413, 415),
  },
});

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

/** Statements per registerImages request at most: the batch, then re-sends of what it missed. */
const REGISTER_ATTEMPTS = 3;

/** Images validated, and inserted by one statement, at a time (registerPipelined). */
export const REGISTER_CHUNK = 2_000;

type Registered = q.RegisteredImage & { id: string };

/**
 * Registers a batch (its items not yet validated); every row of the answer has the id of an
 * image that exists (committed) when the statement that found it ran.
 *
 * A batch of new external_ids (the bulk import) is validated and inserted by registerPipelined.
 * When one of them is already registered, that writes nothing and the batch goes through
 * registerImages' statement, which skips what exists and answers its id. An external_id that
 * statement leaves without an id was registered by a concurrent batch that committed while the
 * statement ran (after its snapshot: ON CONFLICT saw the row, the lookup could not). Those items
 * are registered again, which is idempotent: the next statement's snapshot sees the row
 * (existing), or, when a concurrent deleteImage removed it meanwhile, creates it (created). Rows
 * this request already committed are never answered with a 4xx: only if other requests keep
 * registering and deleting the same external_ids through every attempt is the answer 503 busy,
 * and a retry of the whole batch is safe.
 */
async function registerAll(
  deps: Deps,
  datasetId: string,
  items: unknown[],
): Promise<Registered[]> {
  const { db } = deps;
  const fresh = await registerPipelined(db, datasetId, items);
  if (fresh.rows) return fresh.rows;
  const { images } = fresh;
  await requireDataset(deps, datasetId);
  const rows = await q.registerImages(db, datasetId, images);
  for (let attempt = 2; attempt <= REGISTER_ATTEMPTS; attempt++) {
    const missing = rows.flatMap((r, i) => r.id === null ? [i] : []);
    if (!missing.length) break;
    const again = await q.registerImages(db, datasetId, missing.map((i) => images[i]));
    again.forEach((r, k) => rows[missing[k]] = r);
  }
  if (rows.some((r) => r.id === null)) {
    throw new ApiError(
      503,
      "busy",
      "concurrent requests kept registering and deleting these external_ids; retry (registering " +
        "is idempotent)",
    );
  }
  return rows as Registered[];
}

/**
 * The batch as new images, validated and inserted REGISTER_CHUNK items at a time in one
 * transaction: each chunk's INSERT (insert_new_images.sql) runs in PostgreSQL while the server
 * validates the next chunk, so the database starts on a 10,000-image batch once 2,000 are
 * checked instead of once all are (bench/README.md has the numbers).
 *
 * - An invalid item anywhere rolls it all back: the 400 that validating the whole batch at once
 *   gives (its first MAX_ISSUES issues, in order, with paths into the whole batch).
 * - When one external_id is already registered, a chunk's INSERT fails on the unique index, the
 *   transaction writes nothing, and the answer is the validated batch (`rows: null`) for
 *   registerImages' statement.
 * - An external_id repeated inside the batch is inserted once, from its first occurrence, and
 *   the repeats answer its id as existing, as registerImages' statement does.
 * - A dataset that does not exist is 404 (each INSERT answers no rows), after validation.
 */
async function registerPipelined(
  db: Deps["db"],
  datasetId: string,
  items: unknown[],
): Promise<{ rows: Registered[] } | { rows: null; images: q.NewImage[] }> {
  const images: q.NewImage[] = [];
  const issues: z.core.$ZodIssue[] = [];
  /** For each item, the index (in insertion order) of the image that answers it. */
  const slot: number[] = [];
  /** Whether the item is the occurrence of its external_id that was inserted. */
  const created: boolean[] = [];
  const firstOf = new Map<string, number>();
  let inserted = 0;
  try {
    const ids = await transaction(db, async (tx) => {
      const chunks: { ids: Promise<string[]>; size: number }[] = [];
      let refused = false;
      for (let at = 0; at < items.length && issues.length < MAX_ISSUES; at += REGISTER_CHUNK) {
        const checked = ImageChunk.safeParse(items.slice(at, at + REGISTER_CHUNK));
        if (!checked.success) {
          for (const issue of checked.error.issues) {
            const [index, ...rest] = issue.path;
            issues.push({ ...issue, path: ["images", at + Number(index), ...rest] });
          }
          continue;
        }
        // Already a 400: what is left is only validated, for the issues it may add.
        if (issues.length) continue;
        const fresh: q.NewImage[] = [];
        for (const image of checked.data) {
          images.push(image);
          const externalId = image.external_id;
          const k = externalId == null ? undefined : firstOf.get(externalId);
          created.push(k === undefined);
          if (k !== undefined) {
            slot.push(k);
            continue;
          }
          if (externalId != null) firstOf.set(externalId, inserted);
          slot.push(inserted++);
          fresh.push(image);
        }
        // After a refusal every statement fails: the rest of the batch is only validated.
        if (refused || !fresh.length) continue;
        const chunk = q.insertNewImages(tx, datasetId, fresh);
        chunk.catch(() => refused = true);
        chunks.push({ ids: chunk, size: fresh.length });
        // postgres.js writes a statement from setImmediate: let it go out before validating
        // the next chunk holds the thread.
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (issues.length) throw validationFailed(new z.ZodError(issues), "json");
      const ids: string[] = [];
      for (const chunk of chunks) {
        const got = await chunk.ids;
        if (got.length !== chunk.size) throw notFound(`dataset ${datasetId}`);
        for (const id of got) ids.push(id);
      }
      return ids;
    });
    return {
      rows: images.map((image, i) => ({
        id: ids[slot[i]],
        external_id: image.external_id ?? null,
        created: created[i],
      })),
    };
  } catch (e) {
    if (isPgError(e) && e.code === "23505" && e.constraint_name === q.IMAGES_EXTERNAL_ID_KEY) {
      return { rows: null, images };
    }
    throw e;
  }
}

export function imagesRouter(deps: Deps) {
  const { db } = deps;
  const router = createRouter();
  // registerImages' body, declared by reference (jsonBodyRef).
  router.openAPIRegistry.register("RegisterImages", RegisterImages);
  return router
    .openapi(registerImagesRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const batch = RegisterEnvelope.safeParse(await readJsonBody(c));
      if (!batch.success) throw validationFailed(batch.error, "json");
      const rows = await registerAll(deps, datasetId, batch.data.images);
      const created = rows.filter((r) => r.created).length;
      return c.json({
        created,
        existing: rows.length - created,
        images: rows.map((r) => ({ id: r.id, external_id: r.external_id })),
      }, 200);
    })
    .openapi(listImagesRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const { limit, cursor } = c.req.valid("query");
      await requireDataset(deps, datasetId);
      // One row more than asked tells whether another page exists, so the last page (even a
      // full one) answers next_cursor null instead of pointing at an empty page.
      const rows = await q.listImages(db, datasetId, cursor ?? "0", limit + 1);
      const page = rows.slice(0, limit);
      return c.json({
        items: page.map(imageJson),
        next_cursor: rows.length > limit ? page[page.length - 1].id : null,
      }, 200);
    })
    .openapi(getImageRoute, async (c) => {
      const { imageId } = c.req.valid("param");
      const image = await q.getImage(db, imageId);
      if (!image) throw notFound(`image ${imageId}`);
      return c.json(imageJson(image), 200);
    })
    .openapi(updateImageRoute, async (c) => {
      const { imageId } = c.req.valid("param");
      const image = await q.updateImage(db, imageId, c.req.valid("json"));
      if (!image) throw notFound(`image ${imageId}`);
      return c.json(imageJson(image), 200);
    })
    .openapi(deleteImageRoute, async (c) => {
      const { imageId } = c.req.valid("param");
      if ((await q.deleteImage(db, imageId)) === 0) throw notFound(`image ${imageId}`);
      return c.body(null, 204);
    })
    .openapi(setPrioritiesRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const { priorities } = c.req.valid("json");
      await requireDataset(deps, datasetId);
      const result = await q.setPriorities(db, datasetId, priorities);
      return c.json({
        updated: result.updated,
        not_found: result.not_found.map((pos) => {
          const p = priorities[pos - 1];
          return p.image_id !== undefined
            ? { image_id: p.image_id }
            : { external_id: p.external_id };
        }),
      }, 200);
    });
}
