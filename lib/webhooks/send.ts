/**
 * One delivery's POST, connected only to the addresses the SSRF guard judged (targets.ts): the
 * name is not resolved again, so a DNS answer that changes after the check (rebinding) cannot
 * send it to an internal address. fetch cannot be told where to connect for https://, so this is
 * node:http(s) with a `lookup` that answers with those addresses; TLS still verifies the
 * certificate against the URL's host name.
 *
 * Connections are kept alive and reused per host and port (a socket was opened to an address
 * judged then). Redirects are not followed (a 3xx is a failed attempt). The answer's body is read
 * and dropped, up to ANSWER_LIMIT bytes; past that the connection is closed: a receiver has no
 * reason to say more, and one that streams without end must not hold a socket.
 */

import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";

/** Bytes of an answer's body read (and dropped) before its connection is closed. */
export const ANSWER_LIMIT = 64 * 1024;

export interface PostOptions {
  headers: Record<string, string>;
  body: string;
  /** Connect only to these (null: resolve the name as usual, when private targets are allowed). */
  addresses: string[] | null;
  signal: AbortSignal;
}

export interface Sender {
  /** The answer's status code; rejects when no answer came (refused, reset, TLS, aborted). */
  post(url: string, opts: PostOptions): Promise<number>;
  /** Closes the kept-alive connections. */
  close(): void;
}

/** A `lookup` that answers with `addresses` whatever the name, in the family asked for. */
export function pinnedLookup(addresses: string[]): LookupFunction {
  const entries = addresses.map((address) => ({
    address,
    family: address.includes(":") ? 6 : 4,
  }));
  return (hostname, options, callback) => {
    const asked = options.family === "IPv4" ? 4 : options.family === "IPv6" ? 6 : options.family;
    const fitting = asked === 4 || asked === 6
      ? entries.filter((e) => e.family === asked)
      : entries;
    if (!fitting.length) {
      const e = Object.assign(new Error(`${hostname}: no checked IPv${asked} address`), {
        code: "ENOTFOUND",
      });
      callback(e, "", 0);
    } else if (options.all) {
      callback(null, fitting);
    } else {
      callback(null, fitting[0].address, fitting[0].family);
    }
  };
}

export interface SenderOptions {
  /**
   * Certificates (PEM) to trust instead of the default roots, for tests; a server whose receivers
   * have a private CA sets NODE_EXTRA_CA_CERTS instead (docs/production.md).
   */
  ca?: string[];
}

export function createSender(opts: SenderOptions = {}): Sender {
  const agents = {
    "http:": new http.Agent({ keepAlive: true }),
    "https:": new https.Agent({ keepAlive: true, ...(opts.ca ? { ca: opts.ca } : {}) }),
  };
  return {
    post(url, { headers, body, addresses, signal }) {
      const target = new URL(url);
      const secure = target.protocol === "https:";
      const payload = new TextEncoder().encode(body);
      return new Promise((resolve, reject) => {
        // The status counts once it has come, whatever then happens to the body (only drained,
        // within the attempt's time: its signal cuts a body that trickles without end).
        let status: number | undefined;
        const done = () => resolve(status!);
        const req = (secure ? https : http).request(target, {
          method: "POST",
          headers: { ...headers, "content-length": String(payload.byteLength) },
          agent: agents[secure ? "https:" : "http:"],
          signal,
          ...(addresses ? { lookup: pinnedLookup(addresses) } : {}),
        }, (res) => {
          status = res.statusCode!;
          let read = 0;
          res.on("data", (chunk: Uint8Array) => {
            read += chunk.byteLength;
            if (read > ANSWER_LIMIT) res.destroy();
          });
          res.on("end", done);
          res.on("close", done);
          res.on("error", done);
        });
        req.on("error", (e) => status === undefined ? reject(e) : done());
        req.end(payload);
      });
    },
    close() {
      agents["http:"].destroy();
      agents["https:"].destroy();
    },
  };
}
