/**
 * The database going away and coming back, in miniature: the app's pool talks to PostgreSQL
 * through a TCP proxy this test cuts (open connections reset, new ones refused) and restores.
 * While it is cut, requests answer 503 with the error shape, quickly; once it is restored, the
 * same app answers 200 again within a second. `deno task stress` (scenario "db") does the same
 * by stopping and crashing a real PostgreSQL under load.
 */
import assert from "node:assert/strict";
import { createApp } from "../lib/http/app.ts";
import { connect } from "../lib/db/pool.ts";
import { toErrorResponse } from "../lib/http/errors.ts";
import { silentLogger } from "../lib/runtime/log.ts";
import { assertError, type Res, type TestApp, testConfig, withApp } from "./harness.ts";

/** A TCP proxy to `target` that can be cut and restored on the same port. */
function tcpProxy(target: { hostname: string; port: number }) {
  let listener: Deno.Listener | undefined;
  const open = new Set<Deno.Conn>();
  let port = 0;
  const serve = async (l: Deno.Listener) => {
    for await (const client of l) {
      let upstream: Deno.Conn;
      try {
        upstream = await Deno.connect(target);
      } catch {
        client.close();
        continue;
      }
      open.add(client);
      open.add(upstream);
      const pipe = (from: Deno.Conn, to: Deno.Conn) =>
        from.readable.pipeTo(to.writable).catch(() => {}).finally(() => {
          for (const c of [from, to]) {
            if (open.delete(c)) {
              try {
                c.close();
              } catch {
                // already closed
              }
            }
          }
        });
      pipe(client, upstream);
      pipe(upstream, client);
    }
  };
  const up = () => {
    listener = Deno.listen({ hostname: "127.0.0.1", port });
    port = (listener.addr as Deno.NetAddr).port;
    serve(listener).catch(() => {});
  };
  up();
  return {
    get port() {
      return port;
    },
    cut() {
      listener?.close();
      listener = undefined;
      for (const c of open) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      open.clear();
    },
    restore: up,
  };
}

Deno.test("errors of a lost database are 503, never 500", () => {
  const lost = [
    Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }),
    Object.assign(new Error("write EPIPE"), { code: "EPIPE" }),
    Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
    Object.assign(new Error("write CONNECTION_CLOSED"), { code: "CONNECTION_CLOSED" }),
  ];
  for (const e of lost) {
    const { status, body } = toErrorResponse(e);
    assert.equal(status, 503, e.message);
    assert.equal(body.error.code, "unavailable");
  }
  assert.equal(toErrorResponse(new Error("a bug")).status, 500);
});

// A database outage: 503 while it is down, 200 again soon after.

interface Outage {
  proxy: ReturnType<typeof tcpProxy>;
  /** A request as the admin through the app whose pool goes through the proxy. */
  get(path: string): Promise<Res & { ms: number }>;
  app: ReturnType<typeof createApp>;
  h: TestApp;
}

/** A test with an app whose pool reaches its own database through a proxy it can cut. */
function withOutage(name: string, fn: (o: Outage) => Promise<void>): void {
  withApp(name, async (h) => {
    const target = new URL(h.url);
    const proxy = tcpProxy({ hostname: target.hostname, port: Number(target.port) });
    const viaProxy = new URL(h.url);
    viaProxy.port = String(proxy.port);
    const db = connect(viaProxy.toString(), {
      max: 4,
      connectTimeoutSeconds: 10,
      statementTimeoutMs: 10_000,
    });
    // No cached users: every request needs the database, as after AUTH_USER_CACHE_SECONDS.
    const app = createApp({
      db,
      config: testConfig({ AUTH_USER_CACHE_SECONDS: "0" }),
      log: silentLogger,
    });
    const get = async (path: string) => {
      const started = performance.now();
      const res = await app.request(path, {
        headers: { authorization: `Bearer ${h.admin.token}` },
      });
      const text = await res.text();
      return {
        status: res.status,
        headers: res.headers,
        body: text ? JSON.parse(text) : null,
        ms: performance.now() - started,
      };
    };
    try {
      await fn({ proxy, get, app, h });
    } finally {
      proxy.cut();
      await db.end({ timeout: 0 });
    }
  });
}

/**
 * Cuts the database off and sends enough requests that postgres.js's default backoff would have
 * grown to seconds: each answers 503 with the error shape, quickly.
 */
async function cutAndRequest({ proxy, get }: Outage): Promise<void> {
  proxy.cut();
  for (let i = 0; i < 12; i++) {
    const res = await Promise.all([get("/api/v1/datasets"), get("/api/v1/me")]);
    for (const r of res) {
      assertError(r, 503, "unavailable");
      assert.ok(r.ms < 2000, `a request while down took ${Math.round(r.ms)} ms`);
    }
  }
}

withOutage("db outage: serving through the proxy", async ({ get }) => {
  assert.equal((await get("/api/v1/datasets")).status, 200);
});

withOutage("db outage: cut: requests answer 503 with the error shape, each quickly", async (o) => {
  assert.equal((await o.get("/api/v1/datasets")).status, 200);
  await cutAndRequest(o);
  assert.equal((await o.get("/readyz")).status, 503);
});

withOutage("db outage: restored: 200 again within a second, without a new pool", async (o) => {
  const { proxy, get } = o;
  assert.equal((await get("/api/v1/datasets")).status, 200);
  await cutAndRequest(o);
  proxy.restore();
  const restored = performance.now();
  let res = await get("/api/v1/datasets");
  while (res.status !== 200 && performance.now() - restored < 10_000) {
    await new Promise((r) => setTimeout(r, 50));
    res = await get("/api/v1/datasets");
  }
  const ms = performance.now() - restored;
  assert.equal(res.status, 200);
  assert.ok(ms < 1000, `back after ${Math.round(ms)} ms`);
});

withOutage(
  "db outage: cut in the middle of a query: 503, then served again",
  async ({ proxy, get, app, h }) => {
    const slow = get("/readyz"); // a quick one first, so a connection is open
    await slow;
    const pending = app.request("/api/v1/datasets", {
      method: "POST",
      headers: {
        authorization: `Bearer ${h.admin.token}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ name: "outage", labels: ["a"] }),
    });
    proxy.cut();
    const res = await pending;
    await res.body?.cancel();
    assert.ok([201, 503].includes(res.status), `answered ${res.status}`);
    proxy.restore();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await get("/api/v1/datasets")).status, 200);
  },
);
