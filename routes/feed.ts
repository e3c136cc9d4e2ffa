/**
 * The dataset's changes feed (listDatasetAnnotations): ML clients poll it with a cursor and never
 * miss an annotation, whatever order the writing transactions commit in.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { errors, jsonResponse } from "../lib/http/openapi.ts";
import { createRouter } from "../lib/http/router.ts";
import { secured } from "../lib/http/security.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import { readFeed } from "../operations/feed.ts";
import { annotationJson, FeedPage, SourceFilter } from "../schemas/annotations.ts";
import { idParam } from "../schemas/common.ts";
import { FEED_CURSOR } from "../sql/annotations/queries.ts";

const listDatasetAnnotationsRoute = createRoute({
  method: "get",
  path: "/datasets/{datasetId}/annotations",
  operationId: "listDatasetAnnotations",
  ...secured("admin", "machine"),
  tags: ["annotations"],
  summary: "The dataset's changes feed: annotations after a cursor, in commit-safe order",
  description: "Poll with `after` set to the previous page's next_cursor. Rows are handed out " +
    "only once every transaction that could still commit before them has finished, so a " +
    "poller never misses an annotation, even one whose transaction began earlier and " +
    "committed later than rows already delivered. With `source`, only that source's rows " +
    "are read, however many of the other source there are.",
  request: {
    params: z.object({ datasetId: idParam("datasetId") }),
    query: z.object({
      source: SourceFilter,
      after: z.string().regex(FEED_CURSOR, "not a cursor this server handed out (next_cursor)")
        .optional().openapi({
          description: "next_cursor from the previous page; omit to start at the beginning. " +
            "Pass only a cursor this server handed out: any other string of the same form is " +
            "taken as a position in the feed, and rows before it are skipped.",
        }),
      limit: z.coerce.number().int().min(1).max(1000).default(100),
    }),
  },
  responses: {
    200: jsonResponse(FeedPage, "The next annotations"),
    ...errors(
      "invalid_dataset_id",
      "invalid_cursor",
      "invalid_limit",
      401,
      403,
      "dataset_not_found",
    ),
  },
});

export function feedRouter(deps: Deps) {
  return createRouter()
    .openapi(listDatasetAnnotationsRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const { source, after, limit } = c.req.valid("query");
      const page = await readFeed(
        deps.db,
        datasetId,
        { source: source ?? null, after, limit },
        c.get("principal"),
      );
      return c.json({ items: page.items.map(annotationJson), next_cursor: page.next_cursor }, 200);
    });
}
