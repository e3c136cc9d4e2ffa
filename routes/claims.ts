/** Claims: leases on images that keep two annotators off the same image. */
import { createRoute, z } from "@hono/zod-openapi";
import { errors, jsonResponse } from "../lib/http/openapi.ts";
import { createRouter } from "../lib/http/router.ts";
import { secured } from "../lib/http/security.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import { claimOperations } from "../operations/claims.ts";
import { leaseOperations } from "../operations/leases.ts";
import { ClaimedImage, claimedImageJson, claimJson, RenewedClaim } from "../schemas/claims.ts";
import { idParam } from "../schemas/common.ts";
import { publicOrigin } from "../operations/media.ts";

const claimNextImageRoute = createRoute({
  method: "post",
  path: "/datasets/{datasetId}/claims",
  operationId: "claimNextImage",
  ...secured("admin", "reviewer", "annotator"),
  tags: ["claims"],
  summary: "Lease the next image to annotate",
  description: "Picks the highest-priority image (then the oldest) that still needs a human " +
    "annotation, that the caller has not annotated and whose remaining slots are not all under " +
    "live leases, and leases it to the caller for the dataset's claim_ttl_seconds. A caller that " +
    "already holds a live claim in the dataset gets that same claim back (200), so retries and " +
    "double clicks never take a second image. Leases expire on their own: no job is needed.",
  request: { params: z.object({ datasetId: idParam("datasetId") }) },
  responses: {
    201: jsonResponse(ClaimedImage, "A new lease"),
    200: jsonResponse(ClaimedImage, "The live lease the caller already holds in this dataset"),
    204: { description: "Nothing is left for this caller to annotate" },
    ...errors("invalid_dataset_id", 401, 403, "dataset_not_found"),
  },
});

const claimParams = z.object({ claimId: idParam("claimId") });

const renewClaimRoute = createRoute({
  method: "post",
  path: "/claims/{claimId}/renew",
  operationId: "renewClaim",
  ...secured("admin", "reviewer", "annotator"),
  tags: ["claims"],
  summary: "Extend a lease by the dataset's claim_ttl_seconds from now (holder only)",
  description: "An expired lease can still be renewed while nobody else has taken its slot.",
  request: { params: claimParams },
  responses: {
    200: jsonResponse(RenewedClaim, "The claim with its new expires_at, and fresh media"),
    ...errors(
      "invalid_claim_id",
      401,
      403,
      "claim_not_yours",
      "claim_not_found",
      "claim_expired",
      "claim_completed",
      "claim_released",
    ),
  },
});

const releaseClaimRoute = createRoute({
  method: "delete",
  path: "/claims/{claimId}",
  operationId: "releaseClaim",
  ...secured("admin", "reviewer", "annotator"),
  tags: ["claims"],
  summary: "Give an image back without annotating it (holder, or an admin)",
  description: "The image is claimable again at once. With `skip=true` it is never offered " +
    "to the claim's holder again, while it stays claimable for everyone else.",
  request: {
    params: claimParams,
    query: z.object({
      skip: z.enum(["true", "false"]).optional().openapi({
        description: "`true`: the claim's holder skipped the image; the next claims of the " +
          "holder never offer it again",
      }),
    }),
  },
  responses: {
    204: { description: "Released" },
    ...errors(
      "invalid_claim_id",
      "invalid_skip",
      401,
      403,
      "claim_not_yours",
      "claim_not_found",
      "claim_expired",
      "claim_completed",
      "claim_released",
    ),
  },
});

export function claimsRouter(deps: Deps) {
  const leases = leaseOperations(deps);
  const ops = claimOperations(deps);
  return createRouter()
    .openapi(claimNextImageRoute, async (c) => {
      const { datasetId } = c.req.valid("param");
      const claimed = await ops.claimNext(
        datasetId,
        c.get("principal"),
        publicOrigin(deps, c.req.url),
      );
      if (!claimed) return c.body(null, 204);
      return c.json(claimedImageJson(claimed), claimed.state === "new" ? 201 : 200);
    })
    .openapi(renewClaimRoute, async (c) => {
      const { claimId } = c.req.valid("param");
      const renewed = await leases.renew(
        "annotate",
        claimId,
        c.get("principal"),
        publicOrigin(deps, c.req.url),
      );
      return c.json({ ...claimJson(renewed), ...renewed.media }, 200);
    })
    .openapi(releaseClaimRoute, async (c) => {
      const { claimId } = c.req.valid("param");
      await leases.release(
        "annotate",
        claimId,
        c.get("principal"),
        c.req.valid("query").skip === "true",
      );
      return c.body(null, 204);
    });
}
