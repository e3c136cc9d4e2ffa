/**
 * Dataset membership (admins): who may see a dataset whose access is `members`. For anyone else
 * the dataset and everything in it answer 404, as if they did not exist (may_see_dataset).
 */
import { createRoute, z } from "@hono/zod-openapi";
import { errors, jsonResponse } from "../lib/http/openapi.ts";
import { createRouter } from "../lib/http/router.ts";
import { secured } from "../lib/http/security.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import * as ops from "../operations/datasets.ts";
import { idParam } from "../schemas/common.ts";
import { DatasetMember, datasetMemberJson } from "../schemas/datasets.ts";

const datasetParams = z.object({ datasetId: idParam("datasetId") });
const memberParams = z.object({ datasetId: idParam("datasetId"), userId: idParam("userId") });

const listDatasetMembersRoute = createRoute({
  method: "get",
  path: "/datasets/{datasetId}/members",
  operationId: "listDatasetMembers",
  ...secured("admin"),
  tags: ["datasets"],
  summary: "List a dataset's members, first added first",
  request: { params: datasetParams },
  responses: {
    200: jsonResponse(z.object({ items: z.array(DatasetMember) }), "The members"),
    ...errors(400, 401, 403, 404),
  },
});

const addDatasetMemberRoute = createRoute({
  method: "put",
  path: "/datasets/{datasetId}/members/{userId}",
  operationId: "addDatasetMember",
  ...secured("admin"),
  tags: ["datasets"],
  summary: "Make a user a member of a dataset (idempotent)",
  description: "A member may see the dataset and work in it as its role allows, whatever the " +
    "dataset's access. Adding a member twice changes nothing.",
  request: { params: memberParams },
  responses: {
    204: { description: "The user is a member" },
    ...errors(400, 401, 403, 404),
  },
});

const removeDatasetMemberRoute = createRoute({
  method: "delete",
  path: "/datasets/{datasetId}/members/{userId}",
  operationId: "removeDatasetMember",
  ...secured("admin"),
  tags: ["datasets"],
  summary: "Take a user off a dataset's members (idempotent)",
  description: "When the dataset's access is `members`, the user stops seeing it at once: its " +
    "live claim there ends (end reason `revoked`; the image is claimable again) and a submit " +
    "with it is refused.",
  request: { params: memberParams },
  responses: {
    204: { description: "The user is not a member" },
    ...errors(400, 401, 403, 404),
  },
});

export function membersRouter(deps: Deps) {
  return createRouter()
    .openapi(listDatasetMembersRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const members = await ops.listMembers(deps, datasetId, c.get("principal"));
      return c.json({ items: members.map(datasetMemberJson) }, 200);
    })
    .openapi(addDatasetMemberRoute, async (c) => {
      const { datasetId, userId } = c.req.valid("param");
      await ops.addMember(deps, datasetId, userId, c.get("principal"));
      return c.body(null, 204);
    })
    .openapi(removeDatasetMemberRoute, async (c) => {
      const { datasetId, userId } = c.req.valid("param");
      await ops.removeMember(deps, datasetId, userId, c.get("principal"));
      return c.body(null, 204);
    });
}
