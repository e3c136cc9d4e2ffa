/** Images: registering a batch, which takes several statements. */
import { setImmediate } from "node:timers";
import { z } from "@hono/zod-openapi";
import { isPgError } from "../lib/db/pool.ts";
import { type Db, transaction } from "../lib/db/query.ts";
import { ApiError, MAX_ISSUES, notFound, validationFailed } from "../lib/http/errors.ts";
import { ImageChunk } from "../schemas/images.ts";
import * as q from "../sql/images/queries.ts";
import { type CallerParams, callerParams } from "../sql/users/queries.ts";
import { type Caller, requireDataset } from "./datasets.ts";

/** Statements per registerImages request at most: the batch, then re-sends of what it missed. */
const REGISTER_ATTEMPTS = 3;

/** Images validated, and inserted by one statement, at a time (registerPipelined). */
export const REGISTER_CHUNK = 2_000;

/** A registered image: its id, whether this request created it. */
export type Registered = q.RegisterImagesRow & { id: string };

/**
 * Registers a batch whose items are not yet validated (registerPipelined validates them while it
 * inserts). Every row of the answer has the id of an image that exists (committed) when the
 * statement that found it ran.
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
export async function registerImages(
  db: Db,
  datasetId: string,
  items: unknown[],
  caller: Caller,
): Promise<Registered[]> {
  const who = callerParams(caller);
  const fresh = await registerPipelined(db, datasetId, items, who);
  if (fresh.rows) return fresh.rows;
  const { images } = fresh;
  await requireDataset(db, datasetId, caller);
  const rows = await q.registerImages(db, q.imageBatch(datasetId, images, who));
  // No rows for a batch: the dataset went from the caller's sight since requireDataset.
  if (images.length && !rows.length) throw notFound(`dataset ${datasetId}`);
  for (let attempt = 2; attempt <= REGISTER_ATTEMPTS; attempt++) {
    const missing = rows.flatMap((r, i) => r.id === null ? [i] : []);
    if (!missing.length) break;
    const again = await q.registerImages(
      db,
      q.imageBatch(datasetId, missing.map((i) => images[i]), who),
    );
    if (!again.length) throw notFound(`dataset ${datasetId}`);
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
 * checked instead of once all are (docs/decisions).
 *
 * - An invalid item anywhere rolls it all back: the 400 that validating the whole batch at once
 *   gives (its first MAX_ISSUES issues, in order, with paths into the whole batch).
 * - When one external_id is already registered, a chunk's INSERT fails on the unique index, the
 *   transaction writes nothing, and the answer is the validated batch (`rows: null`) for
 *   registerImages' statement.
 * - An external_id repeated inside the batch is inserted once, from its first occurrence, and
 *   the repeats answer its id as existing, as registerImages' statement does.
 * - A dataset that does not exist, or that the caller may not see, is 404 (each INSERT answers
 *   no rows), after validation.
 */
async function registerPipelined(
  db: Db,
  datasetId: string,
  items: unknown[],
  caller: CallerParams,
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
        const chunk = q.insertNewImages(tx, q.imageBatch(datasetId, fresh, caller));
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

/**
 * A page of the dataset's images after `cursor` (an image id; none: from the start), at most
 * `limit`, with the cursor of the next page (null on the last). With `external_id`, the page is
 * the one image with that external_id (0 or 1 images). 404 for an unknown dataset.
 */
export async function listImages(
  db: Db,
  datasetId: string,
  opts: { limit: number; cursor?: string; external_id?: string },
  caller: Caller,
): Promise<{ items: q.Image[]; next_cursor: string | null }> {
  await requireDataset(db, datasetId, caller);
  const who = callerParams(caller);
  const after = opts.cursor ?? "0";
  if (opts.external_id !== undefined) {
    const image = await q.findImageByExternalId(db, {
      dataset_id: datasetId,
      external_id: opts.external_id,
      after_id: after,
      ...who,
    });
    return { items: image ? [image] : [], next_cursor: null };
  }
  // One row more than asked tells whether another page exists, so the last page (even a full
  // one) answers next_cursor null instead of pointing at an empty page.
  const rows = await q.listImages(db, {
    dataset_id: datasetId,
    after_id: after,
    limit: opts.limit + 1,
    ...who,
  });
  const items = rows.slice(0, opts.limit);
  return { items, next_cursor: rows.length > opts.limit ? items[items.length - 1].id : null };
}

/** How an item of a bulk request named its image: by id or by external_id, as given. */
export type ImageRef = { image_id: string } | { external_id: string };

/** The items at 1-based `positions`, as the caller named their images (the `not_found` lists). */
export function refsAt(
  items: readonly { image_id?: string; external_id?: string }[],
  positions: readonly number[],
): ImageRef[] {
  return positions.map((pos) => {
    const item = items[pos - 1];
    return item.image_id !== undefined
      ? { image_id: item.image_id }
      : { external_id: item.external_id! };
  });
}

/**
 * Sets the priorities of up to 10,000 images of the dataset (404 when it does not exist, or the
 * caller may not see it: the statement changes nothing then, and answers nothing).
 */
export async function setPriorities(
  db: Db,
  datasetId: string,
  items: readonly { image_id?: string; external_id?: string; priority: number }[],
  caller: Caller,
): Promise<{ updated: number; not_found: ImageRef[] }> {
  const result = await q.setPriorities(db, {
    dataset_id: datasetId,
    image_ids: items.map((p) => p.image_id ?? null),
    external_ids: items.map((p) => p.external_id ?? null),
    priorities: items.map((p) => p.priority),
    ...callerParams(caller),
  });
  if (!result) throw notFound(`dataset ${datasetId}`);
  return { updated: result.updated, not_found: refsAt(items, result.not_found) };
}
