/** The dataset's changes feed: ML clients poll it with a cursor and never miss an annotation. */
import type { Db } from "../lib/db/query.ts";
import { invalidField } from "../lib/http/errors.ts";
import * as q from "../sql/annotations/queries.ts";
import { requireDataset } from "./datasets.ts";

/**
 * The page after `after` (a next_cursor this server handed out; 400 otherwise), at most `limit`
 * annotations of `source` (null: every source). 404 for an unknown dataset.
 */
export async function readFeed(
  db: Db,
  datasetId: string,
  opts: { source: q.AnnotationSource | null; after: string | undefined; limit: number },
): Promise<q.FeedPage> {
  const cursor = opts.after === undefined ? null : q.decodeFeedCursor(opts.after);
  if (opts.after !== undefined && !cursor) {
    throw invalidField("query.after", "not a cursor this server handed out (next_cursor)");
  }
  await requireDataset(db, datasetId);
  return await q.listDatasetAnnotations(db, datasetId, {
    source: opts.source,
    after: cursor,
    limit: opts.limit,
  });
}
