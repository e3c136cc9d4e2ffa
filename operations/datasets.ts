/** Datasets: the rules that take more than one statement. */
import { transaction } from "../lib/db/query.ts";
import type { Handle } from "../lib/db/pool.ts";
import { ApiError, notFound } from "../lib/http/errors.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import * as q from "../sql/datasets/queries.ts";
import { setAnnotationsPerImage } from "../sql/images/queries.ts";

/** The dataset, or a 404. */
export async function requireDataset(db: Handle, id: string): Promise<q.Dataset> {
  const dataset = await q.getDataset(db, { id });
  if (!dataset) throw notFound(`dataset ${id}`);
  return dataset;
}

/** A new dataset; 409 when the name is taken. */
export async function createDataset(deps: Deps, d: q.CreateDatasetParams): Promise<q.Dataset> {
  const created = await q.createDataset(deps.db, d);
  if (!created) {
    throw new ApiError(409, "dataset_exists", `a dataset named "${d.name}" already exists`);
  }
  return created;
}

/**
 * Applies `changes`. A new annotations_per_image (k) reaches every image of the dataset in the
 * same transaction: claims and submits decide on the k of the image row they lock. 404 for an
 * unknown dataset, 409 `labels_append_only` for labels that are not the current ones with others
 * appended.
 */
export async function updateDataset(
  deps: Deps,
  id: string,
  changes: q.DatasetChanges,
): Promise<q.Dataset> {
  const { db } = deps;
  const k = changes.annotations_per_image;
  const updated = k === undefined
    ? await q.updateDataset(db, { id, ...changes })
    : await transaction(db, async (tx) => {
      const d = await q.updateDataset(tx, { id, ...changes });
      if (d) await setAnnotationsPerImage(tx, { dataset_id: id, annotations_per_image: k });
      return d;
    });
  if (updated) return updated;
  const current = await requireDataset(db, id);
  throw labelsNotAppended(current.labels, changes.labels ?? current.labels);
}

/**
 * Why `next` is not `current` with labels appended (updateDataset refused it): the labels it
 * drops, or else the first position where it differs.
 */
function labelsNotAppended(current: string[], next: string[]): ApiError {
  const code = "labels_append_only";
  const dropped = current.filter((l) => !next.includes(l));
  if (dropped.length) {
    return new ApiError(
      409,
      code,
      `labels may only be appended; the new list drops ${dropped.map((l) => `"${l}"`).join(", ")}`,
      dropped.map((l) => ({ path: "body.labels", message: `missing existing label "${l}"` })),
    );
  }
  const at = current.findIndex((l, i) => next[i] !== l);
  if (at < 0) {
    // It is a prefix now: the labels changed between the update and this look.
    return new ApiError(409, "conflict", "the dataset's labels changed meanwhile; retry");
  }
  return new ApiError(
    409,
    code,
    `labels may only be appended, keeping their order (a label's position is its COCO ` +
      `category id): body.labels.${at} is "${next[at]}" but must be "${current[at]}"`,
    [{ path: `body.labels.${at}`, message: `must be "${current[at]}", as now` }],
  );
}
