import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT } from "jose";
import { TOKEN_AUDIENCE, TOKEN_ISSUER } from "../lib/auth/tokens.ts";
import { createApp } from "../lib/http/app.ts";
import { silentLogger } from "../lib/runtime/log.ts";
import {
  assertError,
  createTestApp,
  type Res,
  TEST_JWT_SECRET,
  type TestApp,
  TestClock,
  testConfig,
  withApp,
} from "./harness.ts";

const secret = new TextEncoder().encode(TEST_JWT_SECRET);
const now = () => Math.floor(Date.now() / 1000);

/** A token like createToken's, with any claim overridden. */
function ownToken(
  sub: string,
  opts: { iss?: string; aud?: string; exp?: number; nbf?: number; key?: Uint8Array } = {},
) {
  const jwt = new SignJWT({ role: "admin" })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setIssuer(opts.iss ?? TOKEN_ISSUER)
    .setAudience(opts.aud ?? TOKEN_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(opts.exp ?? now() + 600);
  if (opts.nbf) jwt.setNotBefore(opts.nbf);
  return jwt.sign(opts.key ?? secret);
}

// API keys, tokens and users.

withApp("auth: createToken exchanges an API key for a bearer JWT", async (h) => {
  const res = await h.anon("POST", "/api/v1/auth/token", { api_key: h.admin.apiKey });
  assert.equal(res.status, 200);
  assert.equal(res.body.token_type, "Bearer");
  assert.equal(res.body.expires_in, 3600);
  assert.equal(res.body.access_token.split(".").length, 3);
  const me = await h.client(res.body.access_token)("GET", "/api/v1/me");
  assert.equal(me.status, 200);
  assert.deepEqual(me.body, { id: h.admin.id, name: "harness-admin", role: "admin" });
});

withApp("auth: createUser returns the key once; getMe knows each role", async (h) => {
  for (const role of ["admin", "annotator", "machine"] as const) {
    const res = await h.req("POST", "/api/v1/users", { name: `new-${role}`, role });
    assert.equal(res.status, 201);
    assert.equal(res.body.user.role, role);
    assert.equal(res.body.user.disabled_at, null);
    assert.match(res.body.api_key, /^ak_[A-Za-z0-9_-]{43}$/);
    const token = await h.anon("POST", "/api/v1/auth/token", { api_key: res.body.api_key });
    const me = await h.client(token.body.access_token)("GET", "/api/v1/me");
    assert.deepEqual(me.body, { id: res.body.user.id, name: `new-${role}`, role });
  }
  const stored = await h.db`SELECT api_key_hash FROM users WHERE name = 'new-admin'`;
  assert.equal(stored[0].api_key_hash.length, 32, "only a SHA-256 is stored");
  assertError(
    await h.req("POST", "/api/v1/users", { name: "new-admin", role: "admin" }),
    409,
    "user_exists",
  );
  assertError(await h.req("POST", "/api/v1/users", { name: "x", role: "root" }), 400);
  assertError(await h.req("POST", "/api/v1/users", { name: "", role: "admin" }), 400);
});

withApp("auth: listUsers lists everyone", async (h) => {
  assert.equal(
    (await h.req("POST", "/api/v1/users", { name: "new-machine", role: "machine" })).status,
    201,
  );

  const res = await h.req("GET", "/api/v1/users");
  assert.equal(res.status, 200);
  const names = res.body.items.map((u: { name: string }) => u.name);
  assert.ok(names.includes("harness-admin") && names.includes("new-machine"));
});

withApp("auth: bad, rotated and disabled keys get the same 401", async (h) => {
  const victim = await h.user("annotator");
  const rotated = await h.user("annotator");
  const rot = await h.req("POST", `/api/v1/users/${rotated.id}/api-key`);
  assert.equal(rot.status, 200);
  assert.notEqual(rot.body.api_key, rotated.apiKey);
  assert.equal(
    (await h.anon("POST", "/api/v1/auth/token", { api_key: rot.body.api_key })).status,
    200,
    "the new key works",
  );
  assert.equal((await h.req("DELETE", `/api/v1/users/${victim.id}`)).status, 204);

  const answers = [];
  const impossible = ["", " ", "x".repeat(513), "x".repeat(60_000), "ak_\u0000nul"];
  for (
    const key of ["ak_unknown", rotated.apiKey, victim.apiKey, "x".repeat(512), ...impossible]
  ) {
    const res = await h.anon("POST", "/api/v1/auth/token", { api_key: key });
    assertError(res, 401, "invalid_api_key");
    answers.push(JSON.stringify(res.body));
  }
  assert.equal(new Set(answers).size, 1, "one body for every kind of bad key string");
  // Not a request for a token at all: the usual 400.
  assertError(await h.anon("POST", "/api/v1/auth/token", {}), 400, "validation_failed");
  assertError(await h.anon("POST", "/api/v1/auth/token", { api_key: 42 }), 400);
  assertError(await h.anon("POST", "/api/v1/auth/token", "{not json"), 400);
  // A body larger than any token request (64 KiB) is refused before it is read.
  const huge = { api_key: "k".repeat(300 * 1024) };
  assertError(await h.anon("POST", "/api/v1/auth/token", huge), 413, "payload_too_large");
});

withApp("auth: bad keys cost the same time, whatever the reason", async (h) => {
  const disabled = await h.user("machine");
  await h.req("DELETE", `/api/v1/users/${disabled.id}`);
  const time = async (key: string) => {
    const t0 = performance.now();
    await h.anon("POST", "/api/v1/auth/token", { api_key: key });
    return performance.now() - t0;
  };
  const times = { unknown: [] as number[], disabled: [] as number[] };
  // Taken in turns, so a change of load on the machine weighs on both alike.
  for (let i = 0; i < 25; i++) {
    times.unknown.push(await time(`ak_${"A".repeat(43)}`));
    times.disabled.push(await time(disabled.apiKey));
  }
  const median = (ms: number[]) => ms.sort((a, b) => a - b)[12];
  const [unknown, off] = [median(times.unknown), median(times.disabled)];
  assert.ok(Math.abs(unknown - off) < 5, `unknown ${unknown} ms vs disabled ${off} ms`);
});

withApp("auth: rotateApiKey: admins for anyone, users only for themselves", async (h) => {
  const a = await h.user("annotator");
  const b = await h.user("machine");
  const own = await a.req("POST", `/api/v1/users/${a.id}/api-key`);
  assert.equal(own.status, 200);
  assertError(await a.req("POST", `/api/v1/users/${b.id}/api-key`), 403, "forbidden");
  assertError(await h.req("POST", "/api/v1/users/987654/api-key"), 404);
  await h.req("DELETE", `/api/v1/users/${b.id}`);
  assertError(await h.req("POST", `/api/v1/users/${b.id}/api-key`), 409, "user_disabled");
});

withApp("auth: disableUser: 404 for unknown, 409 for oneself, tokens die at once", async (h) => {
  const u = await h.user("annotator");
  assert.equal((await u.req("GET", "/api/v1/me")).status, 200);
  assert.equal((await h.req("DELETE", `/api/v1/users/${u.id}`)).status, 204);
  assertError(await u.req("GET", "/api/v1/me"), 401, "invalid_token");
  assert.equal((await h.req("DELETE", `/api/v1/users/${u.id}`)).status, 204, "idempotent");
  assertError(await h.req("DELETE", "/api/v1/users/987654"), 404);
  assertError(await h.req("DELETE", `/api/v1/users/${h.admin.id}`), 409);
});

withApp("auth: another process sees a disabled user within the cache time", async (h) => {
  // A second app over the same database stands for a second server process, with its own
  // clock; its users are cached for AUTH_USER_CACHE_SECONDS (30 by default).
  const clock = new TestClock();
  clock.freeze();
  const other = createApp({ db: h.db, config: testConfig(), log: silentLogger, now: clock.now });
  const u = await h.user("machine");
  const me = async () => {
    const res = await other.request("/api/v1/me", {
      headers: { authorization: `Bearer ${u.token}` },
    });
    await res.body?.cancel();
    return res;
  };
  assert.equal((await me()).status, 200);
  await h.req("DELETE", `/api/v1/users/${u.id}`);
  assert.equal((await me()).status, 200, "still cached there, within the cache time");
  clock.advance(30_000);
  const res = await me();
  assert.equal(res.status, 401);
  await res.body?.cancel();
});

// Forged and broken tokens are refused.

/** GET /me with that token (or none) and those headers. */
const meWith = (h: TestApp) => (token: string | null, headers: Record<string, string> = {}) =>
  h.client(token)("GET", "/api/v1/me", undefined, headers);

withApp("tokens: no token: 401 with WWW-Authenticate", async (h) => {
  const me = meWith(h);

  const res = await me(null);
  assertError(res, 401, "unauthorized");
  assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer/);
  assertError(await me(null, { authorization: "Basic YWRtaW46YWRtaW4=" }), 401);
  assertError(await me(null, { authorization: "Bearer" }), 401);
  assertError(await me("not.a.jwt"), 401, "invalid_token");
  assertError(await me("garbage"), 401, "invalid_token");
});

withApp("tokens: alg none is refused", async (h) => {
  const me = meWith(h);

  const token = new UnsecuredJWT({ role: "admin" }).setSubject(h.admin.id)
    .setIssuer(TOKEN_ISSUER).setAudience(TOKEN_AUDIENCE).setIssuedAt()
    .setExpirationTime("10m").encode();
  assertError(await me(token), 401, "invalid_token");
});

withApp("tokens: a signature by another secret, or a tampered payload, is refused", async (h) => {
  const me = meWith(h);

  const other = new TextEncoder().encode("another-secret-another-secret-0123456789");
  assertError(await me(await ownToken(h.admin.id, { key: other })), 401);
  const [head, , sig] = h.admin.token.split(".");
  const payload = btoa(JSON.stringify({
    sub: h.admin.id,
    role: "admin",
    iss: TOKEN_ISSUER,
    aud: TOKEN_AUDIENCE,
    iat: now(),
    exp: now() + 9999,
  })).replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");
  assertError(await me(`${head}.${payload}.${sig}`), 401);
});

withApp("tokens: expired, not yet valid, wrong iss, wrong aud: refused", async (h) => {
  const me = meWith(h);

  let res = await me(await ownToken(h.admin.id, { exp: now() - 10 }));
  assertError(res, 401, "invalid_token");
  assert.match(res.body.error.message, /expired/);
  res = await me(await ownToken(h.admin.id, { nbf: now() + 3600 }));
  assertError(res, 401, "invalid_token");
  assertError(await me(await ownToken(h.admin.id, { iss: "someone-else" })), 401);
  assertError(await me(await ownToken(h.admin.id, { aud: "another-api" })), 401);
  assert.equal((await me(await ownToken(h.admin.id))).status, 200, "control: valid token");
});

withApp("tokens: a token accepted before is refused once it expires", async (h) => {
  const me = meWith(h);

  // Verified tokens are remembered (the HMAC is skipped on repeats); expiry is not.
  h.clock.freeze();
  const token = await ownToken(h.admin.id, { exp: h.clock.seconds() + 2 });
  assert.equal((await me(token)).status, 200);
  assert.equal((await me(token)).status, 200);
  h.clock.advance(2100);
  const res = await me(token);
  assertError(res, 401, "invalid_token");
  assert.match(res.body.error.message, /expired/);
});

withApp("tokens: a valid signature for a user that does not exist is refused", async (h) => {
  const me = meWith(h);

  assertError(await me(await ownToken("987654321")), 401, "invalid_token");
  assertError(await me(await ownToken("not-a-number")), 401, "invalid_token");
});

// An external identity provider's tokens (JWKS).

const issuer = "https://idp.example.test/";

/**
 * The provider's key pairs, made once for the file (RSA key generation is slow) and only read:
 * each test serves its own key set from them.
 */
let providerKeys:
  | Promise<{ rsa: CryptoKeyPair; rsa2: CryptoKeyPair; ec: CryptoKeyPair }>
  | undefined;
const keyPairs = () =>
  providerKeys ??= (async () => ({
    rsa: await generateKeyPair("RS256", { extractable: true }),
    rsa2: await generateKeyPair("RS256", { extractable: true }),
    ec: await generateKeyPair("ES256", { extractable: true }),
  }))();

const jwk = async (key: CryptoKey, kid: string, alg: string) => ({
  ...(await exportJWK(key)),
  kid,
  alg,
  use: "sig",
});

interface Provider {
  h: TestApp;
  rsa: CryptoKeyPair;
  rsa2: CryptoKeyPair;
  ec: CryptoKeyPair;
  /** The key set the provider serves (a test may add to it). */
  keys: Record<string, unknown>[];
  /** How many times the key set was fetched. */
  fetches: () => number;
  jwksUrl: string;
  idpToken(
    claims: Record<string, unknown>,
    opts?: { key?: CryptoKey; kid?: string; alg?: string; iss?: string; aud?: string },
  ): Promise<string>;
  // deno-lint-ignore no-explicit-any
  me(token: string): Promise<Res<any>>;
}

/**
 * A test on an app that trusts a provider serving keys k1 (RS256) and e1 (ES256) from its own
 * JWKS endpoint, the role in the "app_role" claim.
 */
function withProvider(name: string, fn: (p: Provider) => Promise<void>): void {
  Deno.test(name, async () => {
    const { rsa, rsa2, ec } = await keyPairs();
    const served = {
      keys: [await jwk(rsa.publicKey, "k1", "RS256"), await jwk(ec.publicKey, "e1", "ES256")],
    };
    let fetches = 0;
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
      if (new URL(req.url).pathname !== "/jwks.json") return new Response("no", { status: 404 });
      fetches++;
      return Response.json({ keys: served.keys });
    });
    const jwksUrl = `http://127.0.0.1:${server.addr.port}/jwks.json`;
    const h = await createTestApp({
      config: {
        AUTH_JWKS_URL: jwksUrl,
        AUTH_ISSUER: issuer,
        AUTH_AUDIENCE: "annotation-api",
        AUTH_ROLE_CLAIM: "app_role",
      },
    });
    try {
      await fn({
        h,
        rsa,
        rsa2,
        ec,
        get keys() {
          return served.keys;
        },
        set keys(keys) {
          served.keys = keys;
        },
        fetches: () => fetches,
        jwksUrl,
        idpToken: (claims, o = {}) =>
          new SignJWT(claims)
            .setProtectedHeader({ alg: o.alg ?? "RS256", kid: o.kid ?? "k1" })
            .setSubject("auth0|alice")
            .setIssuer(o.iss ?? issuer)
            .setAudience(o.aud ?? "annotation-api")
            .setIssuedAt()
            .setExpirationTime("10m")
            .sign(o.key ?? rsa.privateKey),
        me: (token) => h.client(token)("GET", "/api/v1/me"),
      });
    } finally {
      await h.close();
      await server.shutdown();
    }
  });
}

withProvider(
  "idp: a provider token with a role claim is a principal (created on first use)",
  async ({ me, idpToken, ec }) => {
    const res = await me(await idpToken({ app_role: "annotator" }));
    assert.equal(res.status, 200);
    assert.equal(res.body.role, "annotator");
    assert.equal(res.body.name, "idp:auth0|alice");
    const again = await me(await idpToken({ app_role: "annotator" }));
    assert.equal(again.body.id, res.body.id, "the same sub is the same user");
    const ecRes = await me(
      await idpToken({ app_role: ["machine"] }, {
        key: ec.privateKey,
        kid: "e1",
        alg: "ES256",
      }),
    );
    assert.equal(ecRes.status, 200);
    assert.equal(ecRes.body.role, "machine", "role claims may be arrays");
  },
);

withProvider(
  "idp: the key set is fetched once, then cached (not fetched per request)",
  async ({ me, idpToken, fetches }) => {
    assert.equal((await me(await idpToken({ app_role: "annotator" }))).status, 200);
    const before = fetches();
    assert.ok(before >= 1);
    for (let i = 0; i < 5; i++) {
      const res = await me(await idpToken({ app_role: "annotator", n: i }));
      assert.equal(res.status, 200);
    }
    assert.equal(fetches(), before, "known kids are verified from the cached key set");
  },
);

withProvider("idp: an expired provider token: 401", async ({ me, rsa }) => {
  const expired = await new SignJWT({ app_role: "admin" })
    .setProtectedHeader({ alg: "RS256", kid: "k1" })
    .setSubject("auth0|alice").setIssuer(issuer).setAudience("annotation-api")
    .setIssuedAt(now() - 3600).setExpirationTime(now() - 60)
    .sign(rsa.privateKey);
  const res = await me(expired);
  assertError(res, 401, "invalid_token");
  assert.match(res.body.error.message, /expired/);
  const noExp = await new SignJWT({ app_role: "admin" })
    .setProtectedHeader({ alg: "RS256", kid: "k1" })
    .setSubject("auth0|alice").setIssuer(issuer).setAudience("annotation-api")
    .setIssuedAt().sign(rsa.privateKey);
  assertError(await me(noExp), 401, "invalid_token");
});

withProvider(
  "idp: a disabled provider user is refused: at once here, within the cache elsewhere",
  async ({ h, me, rsa, jwksUrl }) => {
    // A second app over the same database stands for a second server process, with its own
    // clock; its users are cached for AUTH_USER_CACHE_SECONDS (30 by default).
    const clock = new TestClock();
    clock.freeze();
    const other = createApp({
      db: h.db,
      config: testConfig({
        AUTH_JWKS_URL: jwksUrl,
        AUTH_ISSUER: issuer,
        AUTH_AUDIENCE: "annotation-api",
        AUTH_ROLE_CLAIM: "app_role",
      }),
      log: silentLogger,
      now: clock.now,
    });
    const token = await new SignJWT({ app_role: "annotator" })
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .setSubject("auth0|to-be-disabled").setIssuer(issuer).setAudience("annotation-api")
      .setIssuedAt().setExpirationTime("10m").sign(rsa.privateKey);
    const otherMe = async () => {
      const res = await other.request("/api/v1/me", {
        headers: { authorization: `Bearer ${token}` },
      });
      await res.body?.cancel();
      return res.status;
    };
    const first = await me(token);
    assert.equal(first.status, 200);
    assert.equal(await otherMe(), 200);
    assert.equal((await h.req("DELETE", `/api/v1/users/${first.body.id}`)).status, 204);
    assertError(await me(token), 401, "invalid_token");
    assert.equal(await otherMe(), 200, "still cached there, within the cache time");
    clock.advance(30_000);
    assert.equal(await otherMe(), 401);
    // A new token for the same subject, even with another role, does not revive the user.
    const again = await new SignJWT({ app_role: "admin" })
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .setSubject("auth0|to-be-disabled").setIssuer(issuer).setAudience("annotation-api")
      .setIssuedAt().setExpirationTime("10m").sign(rsa.privateKey);
    assertError(await me(again), 401, "invalid_token");
    // The cache can never hold a disabled user for more than 60 s.
    assert.throws(() => testConfig({ AUTH_USER_CACHE_SECONDS: "61" }), /AUTH_USER_CACHE/);
  },
);

withProvider(
  "idp: no known role, wrong issuer or audience, foreign key: 401",
  async ({ me, idpToken, rsa2 }) => {
    assertError(await me(await idpToken({})), 401, "invalid_token");
    assertError(await me(await idpToken({ app_role: "superuser" })), 401);
    assertError(await me(await idpToken({ app_role: "admin" }, { iss: "https://evil/" })), 401);
    assertError(await me(await idpToken({ app_role: "admin" }, { aud: "other" })), 401);
    assertError(await me(await idpToken({ app_role: "admin" }, { key: rsa2.privateKey })), 401);
  },
);

withProvider(
  "idp: HS256 signed with the provider's public key (algorithm confusion) is refused",
  async ({ me, rsa, keys }) => {
    const publicJwk = JSON.stringify(await exportJWK(rsa.publicKey));
    for (const material of [publicJwk, JSON.stringify(keys[0])]) {
      const forged = await new SignJWT({ app_role: "admin", role: "admin" })
        .setProtectedHeader({ alg: "HS256", kid: "k1" })
        .setSubject("auth0|mallory").setIssuer(issuer).setAudience("annotation-api")
        .setIssuedAt().setExpirationTime("10m")
        .sign(new TextEncoder().encode(material));
      assertError(await me(forged), 401, "invalid_token");
    }
  },
);

withProvider(
  "idp: a new signing key (unknown kid) is fetched from the JWKS, at most once per cooldown",
  async (p) => {
    const { h, me, idpToken, rsa2, fetches } = p;
    h.clock.freeze();
    assert.equal((await me(await idpToken({ app_role: "annotator" }))).status, 200);
    p.keys = [...p.keys, await jwk(rsa2.publicKey, "k2", "RS256")];
    const before = fetches();
    const k2 = await idpToken({ app_role: "admin" }, { key: rsa2.privateKey, kid: "k2" });
    // Within the cooldown (2 s) of the last fetch, an unknown kid is refused unfetched.
    assertError(await me(k2), 401, "invalid_token");
    assert.equal(fetches(), before, "no refetch within the cooldown");
    h.clock.advance(2100);
    const res = await me(k2);
    assert.equal(res.status, 200);
    assert.equal(res.body.role, "admin", "the role follows the token's claim");
    assert.ok(fetches() > before, "the key set was refetched");
  },
);

withProvider(
  "idp: a provider user cannot mint itself an API key; an admin can",
  async ({ h, me, idpToken }) => {
    const token = await idpToken({ app_role: "machine" });
    const self = await me(token);
    assert.equal(self.status, 200);
    const res = await h.client(token)("POST", `/api/v1/users/${self.body.id}/api-key`);
    assertError(res, 409, "external_user");
    assert.match(res.body.error.message, /identity provider/);
    const [row] = await h.db`SELECT api_key_hash FROM users WHERE id = ${self.body.id}`;
    assert.equal(row.api_key_hash, null, "no key was set");
    const byAdmin = await h.req("POST", `/api/v1/users/${self.body.id}/api-key`);
    assert.equal(byAdmin.status, 200);
    const exchanged = await h.anon("POST", "/api/v1/auth/token", {
      api_key: byAdmin.body.api_key,
    });
    assert.equal(exchanged.status, 200);
  },
);

withProvider("idp: our own HS256 tokens still work alongside", async ({ h }) => {
  assert.equal((await h.req("GET", "/api/v1/me")).status, 200);
});

// An identity provider whose key set cannot be had is 503, not 500 or 401.

interface Unreachable {
  h: TestApp;
  /** What the provider's endpoint answers. */
  setMode(mode: "500" | "html" | "not-a-jwks" | "ok"): void;
  fetches: () => number;
  /** A URL where nothing listens. */
  closedPort: number;
  jwksUrl: string;
  appFor(url: string): ReturnType<typeof createApp>;
  me(app: ReturnType<typeof createApp>): Promise<{
    status: number;
    // deno-lint-ignore no-explicit-any
    body: any;
    headers: Headers;
  }>;
}

/** A test with a provider endpoint that fails as told (500 at first), and a port nobody serves. */
function withUnreachable(name: string, fn: (u: Unreachable) => Promise<void>): void {
  Deno.test(name, async () => {
    const { rsa } = await keyPairs();
    let mode: "500" | "html" | "not-a-jwks" | "ok" = "500";
    let fetches = 0;
    const jwks = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async () => {
      fetches++;
      if (mode === "500") return new Response("upstream broke", { status: 500 });
      if (mode === "html") return new Response("<html>login</html>", { status: 200 });
      if (mode === "not-a-jwks") return Response.json({ hello: "world" });
      return Response.json({
        keys: [{ ...(await exportJWK(rsa.publicKey)), kid: "k1", alg: "RS256", use: "sig" }],
      });
    });
    // A port nothing listens on: bound, then released.
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const closedPort = (closed.addr as Deno.NetAddr).port;
    closed.close();
    const h = await createTestApp();
    const appFor = (url: string) =>
      createApp({
        db: h.db,
        config: testConfig({ AUTH_JWKS_URL: url, AUTH_ISSUER: issuer, AUTH_AUDIENCE: "api" }),
        log: silentLogger,
      });
    const token = await new SignJWT({ role: "annotator" })
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .setSubject("auth0|bob").setIssuer(issuer).setAudience("api")
      .setIssuedAt().setExpirationTime("10m").sign(rsa.privateKey);
    const me = async (app: ReturnType<typeof createApp>) => {
      const res = await app.request("/api/v1/me", {
        headers: { authorization: `Bearer ${token}` },
      });
      return { status: res.status, body: await res.json(), headers: res.headers };
    };
    try {
      await fn({
        h,
        setMode: (m) => mode = m,
        fetches: () => fetches,
        closedPort,
        jwksUrl: `http://127.0.0.1:${jwks.addr.port}/jwks.json`,
        appFor,
        me,
      });
    } finally {
      await h.close();
      await jwks.shutdown();
    }
  });
}

withUnreachable(
  "idp unreachable: connection refused is 503",
  async ({ me, appFor, closedPort }) => {
    const res = await me(appFor(`http://127.0.0.1:${closedPort}/jwks.json`));
    assertError(res, 503, "unavailable");
    assert.match(res.body.error.message, /identity provider/);
    assert.doesNotMatch(res.body.error.message, new RegExp(String(closedPort)));
  },
);

withUnreachable("idp unreachable: a name that does not resolve is 503", async ({ me, appFor }) => {
  const res = await me(appFor("http://idp.invalid/jwks.json"));
  assertError(res, 503, "unavailable");
});

withUnreachable(
  "idp unreachable: the key endpoint answering 500 is 503",
  async ({ me, appFor, jwksUrl, fetches }) => {
    const app = appFor(jwksUrl);

    assertError(await me(app), 503, "unavailable");
    assert.ok(fetches() >= 1);
  },
);

withUnreachable(
  "idp unreachable: the key endpoint answering something that is not a key set is 503",
  async ({ me, appFor, jwksUrl, setMode }) => {
    const app = appFor(jwksUrl);

    setMode("html");
    assertError(await me(app), 503, "unavailable");
    setMode("not-a-jwks");
    assertError(await me(app), 503, "unavailable");
  },
);

withUnreachable(
  "idp unreachable: once the provider is back, the same token works",
  async ({ me, appFor, jwksUrl, setMode }) => {
    const app = appFor(jwksUrl);
    assertError(await me(app), 503, "unavailable");

    setMode("ok");
    const res = await me(app);
    assert.equal(res.status, 200);
    assert.equal(res.body.name, "idp:auth0|bob");
  },
);

withUnreachable(
  "idp unreachable: our own tokens never depended on it",
  async ({ h, appFor, closedPort }) => {
    const res = await appFor(`http://127.0.0.1:${closedPort}/jwks.json`).request("/api/v1/me", {
      headers: { authorization: `Bearer ${h.admin.token}` },
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
  },
);
