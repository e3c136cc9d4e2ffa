/**
 * The dataset's changes feed (listDatasetAnnotations): ML clients poll it with a cursor and never
 * miss an annotation, whatever order the writing transactions commit in.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { secured } from "../lib/auth/tokens.ts";
import { createRouter, type Deps } from "../lib/http/router.ts";
import { errors, idParam, jsonResponse } from "../lib/http/openapi.ts";
import * as q from "../sql/annotations/queries.ts";
import { Annotation, annotationJson, invalid, SourceFilter } from "./annotations.ts";
import { requireDataset } from "./datasets.ts";

const FeedPage = z.object({
  items: z.array(Annotation),
  next_cursor: z.string().openapi({
    description: "Pass as `after` to continue: the position of the page's last item. A page " +
      "with no items still moves it past what the poll looked at (never past a row that can " +
      "still commit), so polling an idle feed stays cheap.",
  }),
}).openapi("AnnotationFeedPage");

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
      after: z.string().max(64).optional().openapi({
        description: "next_cursor from the previous page; omit to start at the beginning",
      }),
      limit: z.coerce.number().int().min(1).max(1000).default(100),
    }),
  },
  responses: {
    200: jsonResponse(FeedPage, "The next annotations"),
    ...errors(400, 401, 403, 404),
  },
});

export function feedRouter(deps: Deps) {
  const { db } = deps;
  return createRouter()
    .openapi(listDatasetAnnotationsRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const { source, after, limit } = c.req.valid("query");
      const cursor = after === undefined ? null : q.decodeFeedCursor(after);
      if (after !== undefined && !cursor) {
        throw invalid("query.after", "not a cursor this server handed out (next_cursor)");
      }
      await requireDataset(deps, datasetId);
      const page = await q.listDatasetAnnotations(db, datasetId, {
        source: source ?? null,
        after: cursor,
        limit,
      });
      return c.json({ items: page.items.map(annotationJson), next_cursor: page.next_cursor }, 200);
    });
}
