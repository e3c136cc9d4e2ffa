/**
 * Webhooks: registering endpoints (behind the SSRF guard), their secrets, pings, redeliveries and
 * the attempt log. Sending is the delivery worker's (lib/webhooks/worker.ts).
 */
import type { Db } from "../lib/db/pool.ts";
import { ApiError, invalidField, notFound } from "../lib/http/errors.ts";
import type { Config } from "../lib/runtime/config.ts";
import { eventIdText, parseEventId } from "../lib/webhooks/events.ts";
import { newSecret, secretText } from "../lib/webhooks/signing.ts";
import { configuredCheck, type TargetCheck } from "../lib/webhooks/targets.ts";
import { callerParams } from "../sql/users/queries.ts";
import * as q from "../sql/webhooks/queries.ts";
import type { Caller } from "./datasets.ts";

/** How long a rotated-out secret keeps signing beside the new one. */
export const ROTATION_OVERLAP_SECONDS = 24 * 3600;

export interface WebhookInput {
  url: string;
  events: string[];
  dataset_id?: string | null;
  description?: string | null;
}

export interface WebhookChanges {
  url?: string;
  events?: string[];
  description?: string | null;
  enabled?: boolean;
}

export interface WebhookOperations {
  /** A new webhook and its secret (shown once); 400 for a refused URL, 404 for no dataset. */
  create(input: WebhookInput, caller: Caller): Promise<{ webhook: q.Webhook; secret: string }>;
  update(id: string, changes: WebhookChanges): Promise<q.Webhook>;
  get(id: string): Promise<q.Webhook>;
  remove(id: string): Promise<void>;
  /** A new secret; the old one signs beside it for ROTATION_OVERLAP_SECONDS. */
  rotateSecret(id: string): Promise<{ webhook: q.Webhook; secret: string }>;
  /** Queues a webhook.ping for the webhook, due now: its event id. */
  ping(id: string): Promise<string>;
  /** Queues event `eventId` (evt_…) for the webhook again, due now. */
  redeliver(id: string, eventId: string): Promise<void>;
  /** Attempts, newest first, before attempt `before` (null: the newest). */
  attempts(id: string, before: string | null, limit: number): Promise<q.Attempt[]>;
}

export function webhookOperations(
  db: Db,
  config: Config,
  check: TargetCheck = configuredCheck(config),
): WebhookOperations {
  async function checkUrl(url: string): Promise<void> {
    const refused = await check(url);
    if (refused) throw invalidField("body.url", refused);
  }
  async function require(id: string): Promise<q.Webhook> {
    const webhook = await q.getWebhook(db, { id });
    if (!webhook) throw notFound(`webhook ${id}`);
    return webhook;
  }

  return {
    async create(input, caller) {
      await checkUrl(input.url);
      const key = newSecret();
      const webhook = await q.createWebhook(db, {
        ...callerParams(caller),
        url: input.url,
        events: input.events,
        dataset_id: input.dataset_id ?? null,
        description: input.description ?? null,
        secret: key,
      });
      if (!webhook) throw notFound(`dataset ${input.dataset_id}`);
      return { webhook, secret: secretText(key) };
    },

    async update(id, changes) {
      if (changes.url !== undefined) await checkUrl(changes.url);
      const webhook = await q.updateWebhook(db, {
        id,
        url: changes.url ?? null,
        events: changes.events ?? null,
        set_description: "description" in changes,
        description: changes.description ?? null,
        enabled: changes.enabled ?? null,
      });
      if (!webhook) throw notFound(`webhook ${id}`);
      return webhook;
    },

    get: require,

    async remove(id) {
      if (!(await q.deleteWebhook(db, { id }))) throw notFound(`webhook ${id}`);
    },

    async rotateSecret(id) {
      const key = newSecret();
      const webhook = await q.rotateWebhookSecret(db, {
        id,
        secret: key,
        overlap_seconds: ROTATION_OVERLAP_SECONDS,
      });
      if (!webhook) throw notFound(`webhook ${id}`);
      return { webhook, secret: secretText(key) };
    },

    async ping(id) {
      const webhook = await require(id);
      if (!webhook.enabled) {
        throw new ApiError(409, "webhook_disabled", `webhook ${id} is disabled; enable it first`);
      }
      const eventId = await q.enqueuePing(db, { id });
      if (!eventId) throw notFound(`webhook ${id}`);
      return eventIdText(eventId);
    },

    async redeliver(id, eventId) {
      const event = parseEventId(eventId);
      const state = event && await q.redeliverEvent(db, { webhook_id: id, event_id: event });
      if (state === "sending") {
        throw new ApiError(
          409,
          "delivery_in_progress",
          `event ${eventId} is being sent to webhook ${id} right now; see its deliveries`,
        );
      }
      if (!state) {
        await require(id);
        throw notFound(`event ${eventId} of webhook ${id}`);
      }
    },

    async attempts(id, before, limit) {
      await require(id);
      return await q.listWebhookAttempts(db, { webhook_id: id, before, limit });
    },
  };
}
