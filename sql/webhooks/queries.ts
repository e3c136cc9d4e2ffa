/** Typed functions for the statements in this folder: one per file. */
import { exec, many, one } from "../../lib/db/query.ts";
import type { Handle } from "../../lib/db/pool.ts";
import { statement } from "../../lib/db/statement.ts";
import type { CallerParams } from "../users/queries.ts";

type None = Record<never, never>;

export interface Webhook {
  id: string;
  url: string;
  events: string[];
  dataset_id: string | null;
  description: string | null;
  enabled: boolean;
  disabled_reason: "gone" | "admin" | null;
  failing_since: Date | null;
  /** While a rotation's old key still signs: until when. */
  previous_secret_until: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface CreateWebhookParams extends CallerParams {
  url: string;
  events: string[];
  dataset_id: string | null;
  description: string | null;
  secret: Uint8Array;
}
const CREATE_WEBHOOK = statement<CreateWebhookParams, Webhook>("webhooks/create_webhook");

/** `null` when dataset_id names no dataset (or none the caller may see). */
export function createWebhook(db: Handle, p: CreateWebhookParams): Promise<Webhook | null> {
  return one(db, CREATE_WEBHOOK, p);
}

const LIST_WEBHOOKS = statement<None, Webhook>("webhooks/list_webhooks");

export function listWebhooks(db: Handle): Promise<Webhook[]> {
  return many(db, LIST_WEBHOOKS, {});
}

const GET_WEBHOOK = statement<{ id: string }, Webhook>("webhooks/get_webhook");

export function getWebhook(db: Handle, p: { id: string }): Promise<Webhook | null> {
  return one(db, GET_WEBHOOK, p);
}

export interface UpdateWebhookParams {
  id: string;
  url: string | null;
  events: string[] | null;
  set_description: boolean;
  description: string | null;
  enabled: boolean | null;
}
const UPDATE_WEBHOOK = statement<UpdateWebhookParams, Webhook>("webhooks/update_webhook");

export function updateWebhook(db: Handle, p: UpdateWebhookParams): Promise<Webhook | null> {
  return one(db, UPDATE_WEBHOOK, p);
}

const DELETE_WEBHOOK = statement<{ id: string }, { id: string }>("webhooks/delete_webhook");

/** Whether there was such a webhook. */
export async function deleteWebhook(db: Handle, p: { id: string }): Promise<boolean> {
  return (await one(db, DELETE_WEBHOOK, p)) !== null;
}

export interface RotateWebhookSecretParams {
  id: string;
  secret: Uint8Array;
  overlap_seconds: number;
}
const ROTATE_WEBHOOK_SECRET = statement<RotateWebhookSecretParams, Webhook>(
  "webhooks/rotate_webhook_secret",
);

export function rotateWebhookSecret(
  db: Handle,
  p: RotateWebhookSecretParams,
): Promise<Webhook | null> {
  return one(db, ROTATE_WEBHOOK_SECRET, p);
}

const ENQUEUE_PING = statement<{ id: string }, { event_id: string }>("webhooks/enqueue_ping");

/** The ping's event id, or `null` for an unknown webhook. */
export async function enqueuePing(db: Handle, p: { id: string }): Promise<string | null> {
  return (await one(db, ENQUEUE_PING, p))?.event_id ?? null;
}

export type AttemptOutcome = "delivered" | "retrying" | "failed" | "gone";

export interface Attempt {
  id: string;
  event_id: string;
  /** Null once the delivery is gone (never: deleting the webhook deletes its attempts too). */
  event_type: string | null;
  attempt: number;
  attempted_at: Date;
  status_code: number | null;
  latency_ms: number;
  error: string | null;
  outcome: AttemptOutcome;
  next_attempt_at: Date | null;
}

export interface ListWebhookAttemptsParams {
  webhook_id: string;
  /** Attempts with ids below this one; null: from the newest. */
  before: string | null;
  limit: number;
}
const LIST_WEBHOOK_ATTEMPTS = statement<ListWebhookAttemptsParams, Attempt>(
  "webhooks/list_webhook_attempts",
);

export function listWebhookAttempts(db: Handle, p: ListWebhookAttemptsParams): Promise<Attempt[]> {
  return many(db, LIST_WEBHOOK_ATTEMPTS, p);
}

export type DeliveryState = "pending" | "sending" | "delivered" | "failed";

const REDELIVER_EVENT = statement<
  { webhook_id: string; event_id: string },
  { state: DeliveryState }
>("webhooks/redeliver_event");

/** The delivery's state after: 'pending' (due now), 'sending' (left alone), null (no such). */
export async function redeliverEvent(
  db: Handle,
  p: { webhook_id: string; event_id: string },
): Promise<DeliveryState | null> {
  return (await one(db, REDELIVER_EVENT, p))?.state ?? null;
}

export interface ClaimDeliveriesParams {
  limit: number;
  per_webhook: number;
  busy_ids: string[];
  busy_counts: number[];
  /** Webhooks whose scan starts at a time (since_ats, at the same positions), not the head. */
  since_ids: string[];
  /** ISO 8601 times. */
  since_ats: string[];
  lease_seconds: number;
}

/** A delivery leased to this worker, with what sending it needs. */
export interface ClaimedDelivery {
  webhook_id: string;
  event_id: string;
  event_type: string;
  data: unknown;
  created_at: Date;
  /** This attempt's number (1 for the first since the event or a redelivery). */
  attempts: number;
  url: string;
  secret: Uint8Array<ArrayBuffer>;
  previous_secret: Uint8Array<ArrayBuffer> | null;
  /** When it fell due (its next_attempt_at before this lease). */
  due_at: Date;
}
const CLAIM_DELIVERIES = statement<ClaimDeliveriesParams, ClaimedDelivery>(
  "webhooks/claim_deliveries",
);

export function claimDeliveries(db: Handle, p: ClaimDeliveriesParams): Promise<ClaimedDelivery[]> {
  return many(db, CLAIM_DELIVERIES, p);
}

export interface AttemptResult {
  webhook_id: string;
  event_id: string;
  attempt: number;
  attempted_at: string;
  status_code: number | null;
  latency_ms: number;
  error: string | null;
  outcome: AttemptOutcome;
  /** Seconds until the next attempt, with 'retrying'. */
  retry_in: number | null;
}
/** AttemptResult's fields as arrays, one attempt at each position. */
export interface RecordAttemptsParams {
  webhook_ids: string[];
  event_ids: string[];
  attempts: number[];
  attempted_at: string[];
  status_codes: (number | null)[];
  latencies_ms: number[];
  errors: (string | null)[];
  outcomes: AttemptOutcome[];
  retries_in: (number | null)[];
}
const RECORD_ATTEMPTS = statement<RecordAttemptsParams>("webhooks/record_attempts");

/** The results as record_attempts.sql takes them: a column each. */
export function attemptColumns(results: AttemptResult[]): RecordAttemptsParams {
  return {
    webhook_ids: results.map((r) => r.webhook_id),
    event_ids: results.map((r) => r.event_id),
    attempts: results.map((r) => r.attempt),
    attempted_at: results.map((r) => r.attempted_at),
    status_codes: results.map((r) => r.status_code),
    latencies_ms: results.map((r) => r.latency_ms),
    errors: results.map((r) => r.error),
    outcomes: results.map((r) => r.outcome),
    retries_in: results.map((r) => r.retry_in),
  };
}

export function recordAttempts(db: Handle, results: AttemptResult[]): Promise<number> {
  return exec(db, RECORD_ATTEMPTS, attemptColumns(results));
}

export interface DeliveryStats {
  queued: number;
  oldest_seconds: number;
}
const GET_DELIVERY_STATS = statement<None, DeliveryStats>("webhooks/get_delivery_stats");

export async function getDeliveryStats(db: Handle): Promise<DeliveryStats> {
  return (await one(db, GET_DELIVERY_STATS, {}))!;
}

export interface PruneWebhookHistoryParams {
  /** Deliveries that ended of events older than this, and attempts older than this. */
  retention_days: number;
  /** Rows of each table at most. */
  limit: number;
}
export interface PrunedWebhookHistory {
  deliveries: number;
  attempts: number;
}
const PRUNE_WEBHOOK_HISTORY = statement<PruneWebhookHistoryParams, PrunedWebhookHistory>(
  "webhooks/prune_webhook_history",
);

/** One call of prune_webhook_history.sql: what it deleted of each table. */
export async function pruneWebhookHistory(
  db: Handle,
  p: PruneWebhookHistoryParams,
): Promise<PrunedWebhookHistory> {
  return (await one(db, PRUNE_WEBHOOK_HISTORY, p))!;
}
