/** Webhooks (admins): endpoints sent signed events, their secrets, pings and delivery attempts. */
import { createRoute, z } from "@hono/zod-openapi";
import { errors, jsonBody, jsonResponse } from "../lib/http/openapi.ts";
import { createRouter } from "../lib/http/router.ts";
import { secured } from "../lib/http/security.ts";
import type { Deps } from "../lib/runtime/deps.ts";
import { webhookOperations } from "../operations/webhooks.ts";
import { Id, idParam } from "../schemas/common.ts";
import {
  attemptJson,
  CreateWebhook,
  EventId,
  UpdateWebhook,
  Webhook,
  WebhookAttemptPage,
  webhookJson,
  WebhookSecret,
} from "../schemas/webhooks.ts";
import { listWebhooks } from "../sql/webhooks/queries.ts";

const webhookParams = z.object({ webhookId: idParam("webhookId") });
const WithSecret = z.object({ webhook: Webhook, secret: WebhookSecret });

const createWebhookRoute = createRoute({
  method: "post",
  path: "/webhooks",
  operationId: "createWebhook",
  tags: ["webhooks"],
  summary: "Register an endpoint to be sent signed events",
  description: "The answer holds the signing secret, shown this once. A URL that does not " +
    "parse, or whose host resolves to a loopback, private, link-local, CGNAT or metadata " +
    "address, is refused (400 on body.url), and in production one that is not https://, unless " +
    "the server allows private targets (WEBHOOK_ALLOW_PRIVATE_TARGETS).",
  ...secured("admin"),
  request: { body: jsonBody(CreateWebhook) },
  responses: {
    201: jsonResponse(WithSecret, "The webhook and its signing secret"),
    ...errors(400, 401, 403, 404, 413, 415),
  },
});

const listWebhooksRoute = createRoute({
  method: "get",
  path: "/webhooks",
  operationId: "listWebhooks",
  tags: ["webhooks"],
  summary: "List webhooks",
  ...secured("admin"),
  responses: {
    200: jsonResponse(z.object({ items: z.array(Webhook) }), "All webhooks, oldest first"),
    ...errors(401, 403),
  },
});

const getWebhookRoute = createRoute({
  method: "get",
  path: "/webhooks/{webhookId}",
  operationId: "getWebhook",
  tags: ["webhooks"],
  summary: "Get a webhook and its status (active, failing, disabled)",
  ...secured("admin"),
  request: { params: webhookParams },
  responses: { 200: jsonResponse(Webhook, "The webhook"), ...errors(400, 401, 403, 404) },
});

const updateWebhookRoute = createRoute({
  method: "patch",
  path: "/webhooks/{webhookId}",
  operationId: "updateWebhook",
  tags: ["webhooks"],
  summary: "Change a webhook's URL, events, description, or enable or disable it",
  description: "A new URL is checked as createWebhook's is (400 when refused). Enabling clears " +
    "the reason the webhook was disabled and its failing mark.",
  ...secured("admin"),
  request: { params: webhookParams, body: jsonBody(UpdateWebhook) },
  responses: {
    200: jsonResponse(Webhook, "The updated webhook"),
    ...errors(400, 401, 403, 404, 413, 415),
  },
});

const deleteWebhookRoute = createRoute({
  method: "delete",
  path: "/webhooks/{webhookId}",
  operationId: "deleteWebhook",
  tags: ["webhooks"],
  summary: "Delete a webhook with its undelivered events and its attempt log",
  ...secured("admin"),
  request: { params: webhookParams },
  responses: { 204: { description: "Deleted" }, ...errors(400, 401, 403, 404) },
});

const rotateWebhookSecretRoute = createRoute({
  method: "post",
  path: "/webhooks/{webhookId}/secret",
  operationId: "rotateWebhookSecret",
  tags: ["webhooks"],
  summary: "Replace a webhook's signing secret",
  description: "The old secret keeps signing beside the new one for 24 hours (both signatures " +
    "in `webhook-signature`), so the receiver can switch without refusing a delivery.",
  ...secured("admin"),
  request: { params: webhookParams },
  responses: {
    200: jsonResponse(WithSecret, "The webhook and its new secret, shown this once"),
    ...errors(400, 401, 403, 404),
  },
});

const pingWebhookRoute = createRoute({
  method: "post",
  path: "/webhooks/{webhookId}/ping",
  operationId: "pingWebhook",
  tags: ["webhooks"],
  summary: "Send a webhook.ping event now",
  description: "Queued due now and sent by the delivery workers within a moment; its attempts " +
    "show in listWebhookDeliveries. 409 `webhook_disabled` for a disabled webhook.",
  ...secured("admin"),
  request: { params: webhookParams },
  responses: {
    202: jsonResponse(z.object({ event_id: EventId }), "Queued"),
    ...errors(400, 401, 403, 404, 409),
  },
});

const listWebhookDeliveriesRoute = createRoute({
  method: "get",
  path: "/webhooks/{webhookId}/deliveries",
  operationId: "listWebhookDeliveries",
  tags: ["webhooks"],
  summary: "Page through a webhook's delivery attempts, newest first",
  description: "Attempts are kept `WEBHOOK_RETENTION_DAYS` (30 by default) after they were made.",
  ...secured("admin"),
  request: {
    params: webhookParams,
    query: z.object({
      limit: z.coerce.number().int().min(1).max(1000).default(100),
      cursor: Id.optional().openapi({ description: "next_cursor from the previous page" }),
    }),
  },
  responses: {
    200: jsonResponse(WebhookAttemptPage, "A page of attempts"),
    ...errors(400, 401, 403, 404),
  },
});

const redeliverWebhookEventRoute = createRoute({
  method: "post",
  path: "/webhooks/{webhookId}/events/{eventId}/redeliver",
  operationId: "redeliverWebhookEvent",
  tags: ["webhooks"],
  summary: "Send an event to a webhook again, now, with a fresh retry schedule",
  description: "Whatever became of it: delivered, failed or waiting for a retry. 409 " +
    "`delivery_in_progress` while it is being sent. An event that was delivered or failed is " +
    "kept `WEBHOOK_RETENTION_DAYS` (30 by default) after it happened; after that, 404.",
  ...secured("admin"),
  request: {
    params: z.object({
      webhookId: idParam("webhookId"),
      eventId: EventId.openapi({ param: { name: "eventId", in: "path" } }),
    }),
  },
  responses: {
    202: { description: "Queued, due now" },
    ...errors(400, 401, 403, 404, 409),
  },
});

export function webhooksRouter(deps: Deps) {
  const { db } = deps;
  const ops = webhookOperations(db, deps.config);
  return createRouter()
    .openapi(createWebhookRoute, async (c) => {
      const { webhook, secret } = await ops.create(c.req.valid("json"), c.get("principal"));
      return c.json({ webhook: webhookJson(webhook), secret }, 201);
    })
    .openapi(listWebhooksRoute, async (c) => {
      return c.json({ items: (await listWebhooks(db)).map(webhookJson) }, 200);
    })
    .openapi(getWebhookRoute, async (c) => {
      const { webhookId } = c.req.valid("param");
      return c.json(webhookJson(await ops.get(webhookId)), 200);
    })
    .openapi(updateWebhookRoute, async (c) => {
      const { webhookId } = c.req.valid("param");
      return c.json(webhookJson(await ops.update(webhookId, c.req.valid("json"))), 200);
    })
    .openapi(deleteWebhookRoute, async (c) => {
      const { webhookId } = c.req.valid("param");
      await ops.remove(webhookId);
      return c.body(null, 204);
    })
    .openapi(rotateWebhookSecretRoute, async (c) => {
      const { webhookId } = c.req.valid("param");
      const { webhook, secret } = await ops.rotateSecret(webhookId);
      return c.json({ webhook: webhookJson(webhook), secret }, 200);
    })
    .openapi(pingWebhookRoute, async (c) => {
      const { webhookId } = c.req.valid("param");
      return c.json({ event_id: await ops.ping(webhookId) }, 202);
    })
    .openapi(listWebhookDeliveriesRoute, async (c) => {
      const { webhookId } = c.req.valid("param");
      const { limit, cursor } = c.req.valid("query");
      // One row more than asked tells whether an older page exists.
      const rows = await ops.attempts(webhookId, cursor ?? null, limit + 1);
      const page = rows.slice(0, limit);
      return c.json({
        items: page.map(attemptJson),
        next_cursor: rows.length > limit ? page[page.length - 1].id : null,
      }, 200);
    })
    .openapi(redeliverWebhookEventRoute, async (c) => {
      const { webhookId, eventId } = c.req.valid("param");
      await ops.redeliver(webhookId, eventId);
      return c.body(null, 202);
    });
}
