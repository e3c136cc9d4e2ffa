/**
 * Where a webhook may send (the SSRF guard). A webhook URL is chosen by an admin, but the server
 * sends from inside the network: a URL naming the database, the cloud's metadata service
 * (169.254.169.254, holding the instance's credentials) or another internal service would turn
 * every event into a request the outside could not make. So a destination is refused when any
 * address its host resolves to (Deno.resolveDns, A and AAAA) is loopback, private, link-local,
 * CGNAT, unspecified, multicast or otherwise reserved, at createWebhook and updateWebhook (400)
 * and again before every send (the name may resolve elsewhere by then). A send connects only to
 * the addresses that check judged (lib/webhooks/send.ts), never resolving the name again, so a
 * DNS answer that changes between the check and the connection (DNS rebinding) cannot reach an
 * internal address. In production only https:// is accepted. WEBHOOK_ALLOW_PRIVATE_TARGETS=true
 * turns both off (the default in development, where receivers run on the same machine).
 */

import type { Config } from "../runtime/config.ts";

/**
 * Why a destination is refused, or null when it may be sent to. `signal` stops the name's
 * resolution (the delivery worker's send timeout covers the check too).
 */
export type TargetCheck = (url: string, signal?: AbortSignal) => Promise<string | null>;

/**
 * The guard's verdict on a destination: why it is refused, or the addresses it judged, which a
 * send must connect to (null: any, when private targets are allowed and nothing was resolved).
 */
export type TargetVerdict =
  | { refused: string; addresses?: undefined }
  | { refused: null; addresses: string[] | null };

export type TargetResolve = (url: string, signal?: AbortSignal) => Promise<TargetVerdict>;

export interface TargetPolicy {
  allowPrivate: boolean;
  /** Only https:// (production, unless allowPrivate). */
  httpsOnly: boolean;
  /** Name resolution, replaceable in tests of the guard. */
  resolve?: (host: string, signal?: AbortSignal) => Promise<string[]>;
  /** Why an address may not be reached; default blockedAddress, replaceable in tests. */
  blocked?: (ip: string) => string | null;
}

/** IPv4 ranges no webhook may reach: [first octets as a 32-bit number, prefix length, name]. */
const BLOCKED_V4: [string, number, string][] = [
  ["0.0.0.0", 8, "unspecified"],
  ["10.0.0.0", 8, "private"],
  ["100.64.0.0", 10, "CGNAT"],
  ["127.0.0.0", 8, "loopback"],
  ["169.254.0.0", 16, "link-local (cloud metadata)"],
  ["172.16.0.0", 12, "private"],
  ["192.0.0.0", 24, "reserved"],
  ["192.168.0.0", 16, "private"],
  ["198.18.0.0", 15, "benchmarking"],
  ["224.0.0.0", 4, "multicast"],
  ["240.0.0.0", 4, "reserved"],
];

function v4Number(ip: string): number | null {
  const parts = ip.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    return null;
  }
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

function blockedV4(ip: string): string | null {
  const n = v4Number(ip);
  if (n === null) return null;
  for (const [base, bits, name] of BLOCKED_V4) {
    const size = 2 ** (32 - bits);
    const start = v4Number(base)!;
    if (n >= start && n < start + size) return name;
  }
  return null;
}

/** The 8 groups of an IPv6 address, or null. */
function v6Groups(ip: string): number[] | null {
  let text = ip.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  // A trailing dotted IPv4 (::ffff:10.0.0.1) as two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = v4Number(v4[1]);
    if (n === null) return null;
    text = text.slice(0, -v4[1].length) + `${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const parse = (s: string) => s ? s.split(":").map((g) => parseInt(g, 16)) : [];
  const head = parse(halves[0]);
  const tail = halves.length === 2 ? parse(halves[1]) : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const groups = [...head, ...Array(Math.max(fill, 0)).fill(0), ...tail];
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff))) return null;
  return groups;
}

function blockedV6(ip: string): string | null {
  const g = v6Groups(ip);
  if (!g) return null;
  if (g.every((x) => x === 0)) return "unspecified";
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return "loopback";
  // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d): judged by the IPv4 address.
  const mapped = g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff;
  const nat64 = g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0);
  if (mapped || nat64) {
    return blockedV4(`${g[6] >> 8}.${g[6] & 255}.${g[7] >> 8}.${g[7] & 255}`);
  }
  if ((g[0] & 0xfe00) === 0xfc00) return "private (unique local, cloud metadata)";
  if ((g[0] & 0xffc0) === 0xfe80) return "link-local";
  if ((g[0] & 0xff00) === 0xff00) return "multicast";
  return null;
}

/** Why `ip` may not be sent to (loopback, private, …), or null. */
export function blockedAddress(ip: string): string | null {
  return ip.includes(":") ? blockedV6(ip) : blockedV4(ip);
}

async function resolveHost(host: string, signal?: AbortSignal): Promise<string[]> {
  const found: string[] = [];
  for (const type of ["A", "AAAA"] as const) {
    try {
      found.push(...await Deno.resolveDns(host, type, { signal }));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  return found;
}

/** The guard for a server's configuration, with the addresses it judged. */
export function targetResolve(policy: TargetPolicy): TargetResolve {
  const resolve = policy.resolve ?? resolveHost;
  const blocked = policy.blocked ?? blockedAddress;
  return async (text, signal) => {
    const refused = (why: string): TargetVerdict => ({ refused: why });
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return refused("is not a URL");
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") return refused("must be http(s)");
    if (policy.allowPrivate) return { refused: null, addresses: null };
    if (policy.httpsOnly && url.protocol !== "https:") {
      return refused("must be https:// (WEBHOOK_ALLOW_PRIVATE_TARGETS=true allows http://)");
    }
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const literal = v4Number(host) !== null || host.includes(":");
    let addresses: string[];
    try {
      addresses = literal ? [host] : await resolve(host, signal);
    } catch (e) {
      if (signal?.aborted) throw e;
      return refused(`${host} could not be resolved: ${(e as Error).message}`);
    }
    if (!addresses.length) return refused(`${host} does not resolve to any address`);
    for (const ip of addresses) {
      const why = blocked(ip);
      if (why) {
        return refused(
          `${host} resolves to ${ip}, a ${why} address: webhooks may not reach internal ` +
            `networks (WEBHOOK_ALLOW_PRIVATE_TARGETS=true allows it)`,
        );
      }
    }
    return { refused: null, addresses };
  };
}

/** The guard as createWebhook and updateWebhook use it: why a destination is refused, or null. */
export function targetCheck(policy: TargetPolicy): TargetCheck {
  const resolve = targetResolve(policy);
  return async (url, signal) => (await resolve(url, signal)).refused;
}

function configuredPolicy(config: Config): TargetPolicy {
  return {
    allowPrivate: config.webhooks.allowPrivateTargets,
    httpsOnly: config.env === "production",
  };
}

/** The guard of a server's configuration: https only in production, unless private is allowed. */
export function configuredCheck(config: Config): TargetCheck {
  return targetCheck(configuredPolicy(config));
}

/** configuredCheck with the addresses judged, for the delivery worker. */
export function configuredResolve(config: Config): TargetResolve {
  return targetResolve(configuredPolicy(config));
}
