/** The dataset's changes feed: ML clients poll it with a cursor and never miss an annotation. */
import type { Db } from "../lib/db/query.ts";
import { invalidField, notFound } from "../lib/http/errors.ts";
import * as q from "../sql/annotations/queries.ts";
import { callerParams } from "../sql/users/queries.ts";
import type { Caller } from "./datasets.ts";

/**
 * The page after `after` (a next_cursor this server handed out; 400 otherwise), at most `limit`
 * annotations of `source` (null: every source). 404 for an unknown dataset, or one the caller may
 * not see (the feed's statement answers nothing for either: one round trip).
 */
export async function readFeed(
  db: Db,
  datasetId: string,
  opts: { source: q.AnnotationSource | null; after: string | undefined; limit: number },
  caller: Caller,
): Promise<q.FeedPage> {
  const cursor = opts.after === undefined ? null : q.decodeFeedCursor(opts.after);
  if (opts.after !== undefined && !cursor) {
    throw invalidField("query.after", "not a cursor this server handed out (next_cursor)");
  }
  const page = await q.listDatasetAnnotations(db, datasetId, {
    source: opts.source,
    after: cursor,
    limit: opts.limit,
  }, callerParams(caller));
  if (!page) throw notFound(`dataset ${datasetId}`);
  return page;
}
