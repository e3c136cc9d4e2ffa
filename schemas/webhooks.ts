/** Webhooks: endpoints that are sent signed events, their secrets, and their delivery attempts. */
import { z } from "@hono/zod-openapi";
import { EVENT_TYPE_NAMES, EVENT_TYPES, eventIdText } from "../lib/webhooks/events.ts";
import type * as q from "../sql/webhooks/queries.ts";
import { Id, Text, Timestamp, WHITESPACE } from "./common.ts";

export const EventType = z.enum(EVENT_TYPE_NAMES).openapi("WebhookEventType", {
  description: "What happened:\n" +
    Object.entries(EVENT_TYPES).map(([name, about]) => `- \`${name}\`: ${about}`).join("\n"),
});

/** An http(s) URL's form, as the document states it. */
const HTTP_URL = new RegExp(`^https?://[^${WHITESPACE}\\u0000]+$`);

/**
 * http(s) URLs only. That it parses as a URL, and where it may point (the SSRF guard), the
 * operation checks (400 on body.url), as JSON Schema cannot state either.
 */
const WebhookUrl = z.string().max(2048, "must be at most 2048 characters").regex(
  HTTP_URL,
  "must be an http:// or https:// URL without spaces",
).openapi({ example: "https://pipeline.example.com/hooks/annotations" });

const Events = z.array(EventType).min(1, "must contain at least 1 event type").max(
  EVENT_TYPE_NAMES.length,
).refine((events) => new Set(events).size === events.length, "must not repeat an event type")
  .openapi({ uniqueItems: true });

export const EventId = z.string().regex(/^evt_[1-9][0-9]{0,17}$/, "must be an event id (evt_…)")
  .openapi({ example: "evt_42" });

export const Webhook = z.object({
  id: Id,
  url: z.string(),
  events: z.array(EventType),
  dataset_id: Id.nullable().openapi({ description: "Null: events of every dataset" }),
  description: z.string().nullable(),
  enabled: z.boolean(),
  status: z.enum(["active", "failing", "disabled"]).openapi({
    description: "`failing`: a delivery used up its retries and none has succeeded since; " +
      "`disabled`: by an admin, or because the receiver answered 410 Gone",
  }),
  failing_since: Timestamp.nullable(),
  disabled_reason: z.enum(["gone", "admin"]).nullable(),
  previous_secret_until: Timestamp.nullable().openapi({
    description: "After rotateWebhookSecret: until when the old secret still signs (beside " +
      "the new one)",
  }),
  created_at: Timestamp,
  updated_at: Timestamp,
}).openapi("Webhook");

export const WebhookSecret = z.string().openapi({
  description: "The signing secret, shown once: verify `webhook-signature` with it",
  example: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
});

export const CreateWebhook = z.strictObject({
  url: WebhookUrl,
  events: Events,
  dataset_id: Id.nullable().optional().openapi({ description: "Only this dataset's events" }),
  description: Text(1000).nullable().optional(),
}).openapi("CreateWebhook");

export const UpdateWebhook = z.strictObject({
  url: WebhookUrl.optional(),
  events: Events.optional(),
  description: Text(1000).nullable().optional(),
  enabled: z.boolean().optional().openapi({
    description: "true re-enables a disabled webhook and clears its failing mark",
  }),
}).refine((b) => Object.keys(b).length > 0, "give at least one field to change").openapi(
  "UpdateWebhook",
  { minProperties: 1 },
);

export const WebhookAttempt = z.object({
  id: Id,
  event_id: EventId,
  event_type: z.string().nullable(),
  attempt: z.number().int().openapi({ description: "1 for an event's first attempt" }),
  attempted_at: Timestamp,
  status_code: z.number().int().nullable().openapi({ description: "Null: no answer" }),
  latency_ms: z.number().int(),
  error: z.string().nullable().openapi({
    description: "Why no answer came (a timeout, a refused connection, a refused destination)",
  }),
  outcome: z.enum(["delivered", "retrying", "failed", "gone"]),
  next_attempt_at: Timestamp.nullable().openapi({ description: "When it is tried again" }),
}).openapi("WebhookAttempt");

export const WebhookAttemptPage = z.object({
  items: z.array(WebhookAttempt),
  next_cursor: Id.nullable().openapi({
    description: "Pass as `cursor` for the next (older) page; null on the last page",
  }),
}).openapi("WebhookAttemptPage");

export function webhookJson(w: q.Webhook): z.infer<typeof Webhook> {
  return {
    id: w.id,
    url: w.url,
    events: w.events as z.infer<typeof EventType>[],
    dataset_id: w.dataset_id,
    description: w.description,
    enabled: w.enabled,
    status: !w.enabled ? "disabled" : w.failing_since ? "failing" : "active",
    failing_since: w.failing_since?.toISOString() ?? null,
    disabled_reason: w.disabled_reason,
    previous_secret_until: w.previous_secret_until?.toISOString() ?? null,
    created_at: w.created_at.toISOString(),
    updated_at: w.updated_at.toISOString(),
  };
}

export function attemptJson(a: q.Attempt): z.infer<typeof WebhookAttempt> {
  return {
    id: a.id,
    event_id: eventIdText(a.event_id),
    event_type: a.event_type,
    attempt: a.attempt,
    attempted_at: a.attempted_at.toISOString(),
    status_code: a.status_code,
    latency_ms: a.latency_ms,
    error: a.error,
    outcome: a.outcome,
    next_attempt_at: a.next_attempt_at?.toISOString() ?? null,
  };
}
