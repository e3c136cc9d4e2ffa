/**
 * The delivery worker: every server process runs one (main.ts starts it, and stops it in the
 * graceful shutdown before the pool closes). It takes due deliveries from the outbox
 * (sql/webhooks/claim_deliveries.sql: FOR UPDATE SKIP LOCKED and a lease, so the workers of
 * several replicas share the work and never send one attempt twice at once), POSTs each with the
 * Standard Webhooks headers within 15 s (the destination's address check included), to the
 * addresses that check judged (send.ts), and records the outcome (sql/webhooks/record_attempts.sql,
 * many at once).
 *
 * - 2xx: delivered. 410 Gone: the webhook is disabled. Anything else, a timeout, a refused
 *   connection or a destination the SSRF guard refuses: retried after the next delay of
 *   WEBHOOK_RETRY_SCHEDULE (±10 % jitter); after the last, the delivery has failed and the
 *   webhook is marked failing. Redirects are not followed (a 3xx is a failure).
 * - At least once: a worker that dies mid-send leaves its delivery leased; the lease ends
 *   LEASE_SECONDS later and any worker sends it again. A receiver may get an event twice (the
 *   webhook-id header is the same: deduplicate on it) and in any order.
 * - One slow receiver delays no other: at most PER_WEBHOOK sends in flight per webhook, and
 *   MAX_IN_FLIGHT in all, per process.
 * - The history is kept WEBHOOK_RETENTION_DAYS: every PRUNE_MS the worker deletes the deliveries
 *   that ended of older events, and older attempts (sql/webhooks/prune_webhook_history.sql).
 */
import type { Db } from "../db/pool.ts";
import type { Config } from "../runtime/config.ts";
import type { Logger } from "../runtime/log.ts";
import type { Metrics } from "../runtime/metrics.ts";
import * as q from "../../sql/webhooks/queries.ts";
import { eventIdText } from "./events.ts";
import { signatureHeader } from "./signing.ts";
import { createSender, type Sender } from "./send.ts";
import { configuredResolve, type TargetResolve } from "./targets.ts";

/** How long a receiver has to answer (the Standard Webhooks specification: 15 to 30 s). */
export const SEND_TIMEOUT_MS = 15_000;
/** A delivery's lease: the send's timeout and room to record its outcome. */
export const LEASE_SECONDS = 20;
/** Sends in flight per webhook, per process: a slow receiver holds at most these. */
export const PER_WEBHOOK = 16;
/** Sends in flight in all, per process. */
export const MAX_IN_FLIGHT = 32;
/** How often an idle worker looks for due deliveries (the most an event waits when all is idle). */
export const POLL_MS = 250;
/** Between claims while there is work: outcomes and new claims gather instead of one each. */
const BUSY_PAUSE_MS = 10;
/**
 * Sends that end during that pause and wake the worker early, while no request is being answered
 * (`serving`): a claim then takes at least this many (half a webhook's slots), not one per
 * statement, and a backlog does not wait out the pause with its slots idle. To a receiver on
 * 127.0.0.1, 4,600–5,000 deliveries a second against 1,150–1,270 at the pace of the pause
 * (bench/experiments/webhook_delivery.ts; decision 0013).
 */
const REFILL_AT = PER_WEBHOOK / 2;
/**
 * How long the first outcome waits for others before they are recorded in one statement (the
 * delivery's lease, LEASE_SECONDS, covers the wait). Recording each as it ended took 4,148
 * statements in the bench's webhook run (about 7 outcomes each), 1,495 so (decision 0029).
 */
const RECORD_GATHER_MS = 10;
/** How often the queue gauges are read from the database. */
const STATS_MS = 5_000;
/**
 * A webhook's claims start SINCE_MARGIN_MS before the latest due time it has claimed, not at the
 * due index's head, whose dead entries grow until a vacuum (claim_deliveries.sql). An event
 * written by a transaction that began earlier than that (one running longer than the margin) is
 * still found by the scan from the head that every FULL_SCAN_MS makes.
 */
const SINCE_MARGIN_MS = 5_000;
const FULL_SCAN_MS = 10_000;
/** How often the history past WEBHOOK_RETENTION_DAYS is pruned (and once at the start). */
const PRUNE_MS = 10 * 60_000;
/** Rows of each table one prune statement deletes at most: its locks and WAL stay small. */
const PRUNE_LIMIT = 5_000;

/** Rejects with the signal's reason once it aborts (never settles otherwise). */
function whenAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

export interface WorkerOptions {
  db: Db;
  config: Config;
  log: Logger;
  metrics: Metrics;
  pollMs?: number;
  timeoutMs?: number;
  /** How often the queue gauges are read; default STATS_MS. */
  statsMs?: number;
  /** How often a claim scans each webhook's due deliveries from the head; default FULL_SCAN_MS. */
  fullScanMs?: number;
  /** The SSRF guard; default the configuration's (lib/webhooks/targets.ts). */
  check?: TargetResolve;
  /** How a delivery is sent; default createSender() (lib/webhooks/send.ts), closed at stop. */
  sender?: Sender;
  /**
   * Whether the process is answering requests at this moment (main.ts counts them); default
   * never. While it is, a backlog is sent at the pace of BUSY_PAUSE_MS, not refilled as sends end
   * (REFILL_AT): deliveries share the server's thread with the annotators' requests, and people
   * waiting come before receivers, which are told nothing about timing.
   */
  serving?: () => boolean;
}

export interface WebhookWorker {
  /**
   * Stops taking deliveries, lets the sends in flight finish for up to `graceMs`, cuts off the
   * rest (they are due again at once, for any worker) and records every outcome.
   */
  stop(graceMs?: number): Promise<void>;
  /** Sends in flight now. */
  inFlight(): number;
}

/** Seconds before the retry after attempt `attempt` (1-based), jittered; null: no retry left. */
export function retryDelay(
  schedule: number[],
  attempt: number,
  random = Math.random,
): number | null {
  const base = schedule[attempt - 1];
  if (base === undefined) return null;
  return base * (0.9 + 0.2 * random());
}

export function startWebhookWorker(opts: WorkerOptions): WebhookWorker {
  const { db, config, log, metrics } = opts;
  const pollMs = opts.pollMs ?? POLL_MS;
  const timeoutMs = opts.timeoutMs ?? SEND_TIMEOUT_MS;
  const check = opts.check ?? configuredResolve(config);
  const sender = opts.sender ?? createSender();
  const serving = opts.serving ?? (() => false);
  const schedule = config.webhooks.retrySchedule;
  /** The sends under way, to cut off at the end of a shutdown's grace. */
  const aborts = new Set<AbortController>();
  const busy = new Map<string, number>();
  /** Per webhook: where its next claim's scan starts (none: at the head). */
  const since = new Map<string, number>();
  let fullScanAt = performance.now();
  const sends = new Set<Promise<void>>();
  /** Sends under way (their outcomes may still be being recorded after). */
  let sending = 0;
  let stopping = false;
  let wake: (() => void) | undefined;
  /** Sends ended since the latest claim, while the worker pauses after one that found work. */
  let ended = 0;
  let refilling = false;
  let stats: q.DeliveryStats = { queued: 0, oldest_seconds: 0 };

  metrics.gauge(
    "webhook_queue_depth",
    "Webhook deliveries owed to enabled webhooks (pending or being sent)",
    () => [[{}, stats.queued]],
  );
  metrics.gauge(
    "webhook_oldest_undelivered_seconds",
    "Age of the oldest event still owed to an enabled webhook",
    () => [[{}, stats.oldest_seconds]],
  );

  // Outcomes are recorded many per statement: those that end within RECORD_GATHER_MS of the
  // first, and those that end while a statement runs, go in the next.
  const unrecorded: { result: q.AttemptResult; done(error?: unknown): void }[] = [];
  let recording = false;
  let gathering: ReturnType<typeof setTimeout> | undefined;
  const flush = async () => {
    gathering = undefined;
    recording = true;
    while (unrecorded.length) {
      const batch = unrecorded.splice(0, 500);
      try {
        await q.recordAttempts(db, batch.map((b) => b.result));
        for (const b of batch) b.done();
      } catch (e) {
        for (const b of batch) b.done(e);
      }
    }
    recording = false;
  };
  const record = (result: q.AttemptResult) =>
    new Promise<void>((resolve, reject) => {
      unrecorded.push({ result, done: (e) => e === undefined ? resolve() : reject(e) });
      if (!recording) gathering ??= setTimeout(flush, RECORD_GATHER_MS);
    });

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  async function attempt(d: q.ClaimedDelivery): Promise<q.AttemptResult> {
    const attemptedAt = new Date();
    const started = performance.now();
    let status: number | null = null;
    let error: string | null = null;
    let interrupted = false;
    let checked = false;
    // One timer per attempt, cleared when it ends (AbortSignal.timeout's would linger 15 s
    // each). It covers the address check as well as the send, so an attempt ends within
    // timeoutMs, well inside its delivery's lease (LEASE_SECONDS), however slow the DNS.
    const abort = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      abort.abort();
    }, timeoutMs);
    aborts.add(abort);
    try {
      // Raced with the timer, so a resolver that ignores the signal cannot hold the attempt.
      const verdict = await Promise.race([check(d.url, abort.signal), whenAborted(abort.signal)])
        .catch((e): { refused: string } => {
          if (abort.signal.aborted) throw e;
          return { refused: `check failed: ${(e as Error).message}` };
        });
      checked = true;
      if (verdict.refused !== null) {
        error = `refused: ${verdict.refused}`;
      } else {
        const id = eventIdText(d.event_id);
        const timestamp = Math.floor(Date.now() / 1000);
        const body = JSON.stringify({
          type: d.event_type,
          timestamp: d.created_at.toISOString(),
          data: d.data,
        });
        const keys = d.previous_secret ? [d.secret, d.previous_secret] : [d.secret];
        status = await sender.post(d.url, {
          headers: {
            "content-type": "application/json",
            "user-agent": "annotation-server-webhooks",
            "webhook-id": id,
            "webhook-timestamp": String(timestamp),
            "webhook-signature": signatureHeader(keys, id, timestamp, body),
          },
          body,
          // Only where the guard looked: the name is not resolved again (send.ts).
          addresses: verdict.addresses,
          signal: abort.signal,
        });
      }
    } catch (e) {
      if (timedOut) {
        error = checked
          ? `no answer within ${timeoutMs / 1000} s`
          : `the destination's address was not resolved within ${timeoutMs / 1000} s`;
      } else if (abort.signal.aborted) {
        interrupted = true;
        error = "interrupted: the server shut down during the send";
      } else {
        error = (e as Error).message.slice(0, 500);
      }
    } finally {
      clearTimeout(timer);
      aborts.delete(abort);
    }
    const latency = Math.round(performance.now() - started);
    const base = {
      webhook_id: d.webhook_id,
      event_id: d.event_id,
      attempt: d.attempts,
      attempted_at: attemptedAt.toISOString(),
      status_code: status,
      latency_ms: latency,
      error,
    };
    if (status !== null && status >= 200 && status < 300) {
      return { ...base, outcome: "delivered", retry_in: null };
    }
    if (status === 410) return { ...base, outcome: "gone", retry_in: null };
    // Cut off by a shutdown: due again at once, for another worker.
    const retryIn = interrupted ? 0 : retryDelay(schedule, d.attempts);
    if (retryIn === null) return { ...base, outcome: "failed", retry_in: null };
    return { ...base, outcome: "retrying", retry_in: retryIn };
  }

  function start(d: q.ClaimedDelivery): void {
    busy.set(d.webhook_id, (busy.get(d.webhook_id) ?? 0) + 1);
    sending++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      sending--;
      const left = busy.get(d.webhook_id)! - 1;
      if (left) busy.set(d.webhook_id, left);
      else busy.delete(d.webhook_id);
      if (refilling && ++ended >= REFILL_AT && !serving()) wake?.();
    };
    const send: Promise<void> = (async () => {
      let result: q.AttemptResult | undefined;
      try {
        result = await attempt(d);
        metrics.webhookDeliveries.inc({ outcome: result.outcome });
        // The slot is free once the send is over; the lease keeps the delivery until recorded.
        release();
        await record(result);
      } catch (e) {
        // The database is unreachable: the lease runs out and the delivery is sent again.
        log.warn("webhook attempt not recorded", {
          webhook_id: d.webhook_id,
          event_id: eventIdText(d.event_id),
          outcome: result?.outcome,
          error: (e as Error).message,
        });
      } finally {
        release();
      }
    })();
    sends.add(send);
    void send.then(() => sends.delete(send));
  }

  const loop = (async () => {
    while (!stopping) {
      const free = MAX_IN_FLIGHT - sending;
      let claimed: q.ClaimedDelivery[] = [];
      if (free > 0) {
        if (performance.now() - fullScanAt >= (opts.fullScanMs ?? FULL_SCAN_MS)) {
          since.clear();
          fullScanAt = performance.now();
        }
        try {
          claimed = await q.claimDeliveries(db, {
            limit: free,
            per_webhook: PER_WEBHOOK,
            busy_ids: [...busy.keys()],
            busy_counts: [...busy.values()],
            since_ids: [...since.keys()],
            since_ats: [...since.values()].map((ms) => new Date(ms).toISOString()),
            lease_seconds: LEASE_SECONDS,
          });
        } catch (e) {
          log.warn("webhook deliveries not claimed", { error: (e as Error).message });
        }
        for (const d of claimed) {
          // Claimed in due order: what was due before this one is taken too (or held by another
          // worker, which leases it or lets the full scan find it).
          const from = d.due_at.getTime() - SINCE_MARGIN_MS;
          if (from > (since.get(d.webhook_id) ?? -Infinity)) since.set(d.webhook_id, from);
          start(d);
        }
      }
      if (stopping) break;
      // Work found, or every slot busy: come back in BUSY_PAUSE_MS, or once REFILL_AT sends have
      // ended, and claim for the slots freed meanwhile together (waking at each send's end
      // claimed one row per statement: 0.5 ms of server CPU per delivery). Idle: at the next
      // poll.
      refilling = claimed.length > 0 || free <= 0;
      ended = 0;
      await pause(refilling ? BUSY_PAUSE_MS : pollMs);
      refilling = false;
    }
  })();

  const readStats = async () => {
    try {
      stats = await q.getDeliveryStats(db);
    } catch (e) {
      log.debug("webhook stats not read", { error: (e as Error).message });
    }
  };
  void readStats();
  const statsTimer = setInterval(readStats, opts.statsMs ?? STATS_MS);

  // The history past its retention, a statement of PRUNE_LIMIT rows at a time until a statement
  // finds fewer.
  let pruning: Promise<void> | undefined;
  const prune = () => {
    pruning ??= (async () => {
      const pruned = { deliveries: 0, attempts: 0 };
      try {
        while (!stopping) {
          const r = await q.pruneWebhookHistory(db, {
            retention_days: config.webhooks.retentionDays,
            limit: PRUNE_LIMIT,
          });
          pruned.deliveries += r.deliveries;
          pruned.attempts += r.attempts;
          if (r.deliveries < PRUNE_LIMIT && r.attempts < PRUNE_LIMIT) break;
        }
      } catch (e) {
        log.warn("webhook history not pruned", { error: (e as Error).message });
      } finally {
        pruning = undefined;
      }
      if (pruned.deliveries || pruned.attempts) {
        log.info("webhook history pruned", {
          ...pruned,
          retention_days: config.webhooks.retentionDays,
        });
      }
    })();
  };
  prune();
  const pruneTimer = setInterval(prune, PRUNE_MS);

  return {
    inFlight: () => sending,
    async stop(graceMs = 5_000) {
      stopping = true;
      clearInterval(statsTimer);
      clearInterval(pruneTimer);
      wake?.();
      await loop;
      if (sends.size) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          Promise.all(sends),
          new Promise((resolve) => timer = setTimeout(resolve, graceMs)),
        ]);
        clearTimeout(timer);
        for (const a of aborts) a.abort();
        await Promise.all(sends);
      }
      if (!opts.sender) sender.close();
      await pruning;
    },
  };
}
