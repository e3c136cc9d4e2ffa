/**
 * A webhook receiver on 127.0.0.1 for tests, stress and bench: it records every request (headers,
 * raw body) and answers what `respond` says (200 by default), and notices when one webhook-id
 * arrives while a request with the same id is still being answered (sent twice at once).
 */
import { sleep } from "./time.ts";

export interface Received {
  id: string;
  timestamp: string;
  signature: string;
  /** The raw body, as signed. */
  body: string;
  // deno-lint-ignore no-explicit-any
  json: any;
  headers: Headers;
  /** When it arrived (Date.now()). */
  at: number;
}

export interface Receiver {
  url: string;
  port: number;
  received: Received[];
  /** How many times a webhook-id arrived while the same id was in flight. */
  overlaps: number;
  /** Waits until `done` holds for what was received, or throws after `timeoutMs`. */
  waitFor(done: (received: Received[]) => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface ReceiverOptions {
  /**
   * The answer to a request (the n-th, 1-based, with this webhook-id): a status, or a whole
   * Response (a redirect's Location); may wait first.
   */
  respond?: (r: Received, nthForId: number) => number | Response | Promise<number | Response>;
  /** A fixed port (to come back on after close). */
  port?: number;
  /** Serve https with this certificate and key (PEM); `url` still names 127.0.0.1. */
  tls?: { cert: string; key: string };
}

export function startReceiver(opts: ReceiverOptions = {}): Receiver {
  const received: Received[] = [];
  const perId = new Map<string, number>();
  const inFlight = new Set<string>();
  let overlaps = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: opts.port ?? 0, onListen: () => {}, ...opts.tls },
    async (req) => {
      const body = await req.text();
      const h = req.headers;
      const r: Received = {
        id: h.get("webhook-id") ?? "",
        timestamp: h.get("webhook-timestamp") ?? "",
        signature: h.get("webhook-signature") ?? "",
        body,
        json: body ? JSON.parse(body) : null,
        headers: h,
        at: Date.now(),
      };
      if (inFlight.has(r.id)) overlaps++;
      inFlight.add(r.id);
      received.push(r);
      const n = (perId.get(r.id) ?? 0) + 1;
      perId.set(r.id, n);
      try {
        const answer = opts.respond ? await opts.respond(r, n) : 200;
        return typeof answer === "number" ? new Response(null, { status: answer }) : answer;
      } finally {
        inFlight.delete(r.id);
      }
    },
  );
  const port = (server.addr as Deno.NetAddr).port;
  return {
    url: `${opts.tls ? "https" : "http"}://127.0.0.1:${port}/hook`,
    port,
    received,
    get overlaps() {
      return overlaps;
    },
    async waitFor(done, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (!done(received)) {
        if (Date.now() > deadline) {
          throw new Error(
            `the receiver did not get what was awaited within ${timeoutMs} ms ` +
              `(${received.length} requests)`,
          );
        }
        await sleep(20);
      }
    },
    close: () => server.shutdown(),
  };
}
