import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT } from "jose";
import { TOKEN_AUDIENCE, TOKEN_ISSUER } from "../lib/auth/tokens.ts";
import { createApp } from "../lib/http/app.ts";
import { silentLogger } from "../lib/runtime/log.ts";
import { assertError, createTestApp, TEST_JWT_SECRET, testConfig } from "./harness.ts";

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

Deno.test("auth: API keys, tokens and users", async (t) => {
  const h = await createTestApp({ config: { AUTH_USER_CACHE_SECONDS: "1" } });
  try {
    await t.step("createToken exchanges an API key for a bearer JWT", async () => {
      const res = await h.anon("POST", "/api/v1/auth/token", { api_key: h.admin.apiKey });
      assert.equal(res.status, 200);
      assert.equal(res.body.token_type, "Bearer");
      assert.equal(res.body.expires_in, 3600);
      assert.equal(res.body.access_token.split(".").length, 3);
      const me = await h.client(res.body.access_token)("GET", "/api/v1/me");
      assert.equal(me.status, 200);
      assert.deepEqual(me.body, { id: h.admin.id, name: "harness-admin", role: "admin" });
    });

    await t.step("createUser returns the key once; getMe knows each role", async () => {
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

    await t.step("listUsers lists everyone", async () => {
      const res = await h.req("GET", "/api/v1/users");
      assert.equal(res.status, 200);
      const names = res.body.items.map((u: { name: string }) => u.name);
      assert.ok(names.includes("harness-admin") && names.includes("new-machine"));
    });

    await t.step("bad, rotated and disabled keys get the same 401", async () => {
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

    await t.step("bad keys cost the same time, whatever the reason", async () => {
      const disabled = await h.user("machine");
      await h.req("DELETE", `/api/v1/users/${disabled.id}`);
      const median = async (key: string) => {
        const times: number[] = [];
        for (let i = 0; i < 25; i++) {
          const t0 = performance.now();
          await h.anon("POST", "/api/v1/auth/token", { api_key: key });
          times.push(performance.now() - t0);
        }
        return times.sort((a, b) => a - b)[12];
      };
      const unknown = await median(`ak_${"A".repeat(43)}`);
      const off = await median(disabled.apiKey);
      assert.ok(Math.abs(unknown - off) < 5, `unknown ${unknown} ms vs disabled ${off} ms`);
    });

    await t.step("rotateApiKey: admins for anyone, users only for themselves", async () => {
      const a = await h.user("annotator");
      const b = await h.user("machine");
      const own = await a.req("POST", `/api/v1/users/${a.id}/api-key`);
      assert.equal(own.status, 200);
      assertError(await a.req("POST", `/api/v1/users/${b.id}/api-key`), 403, "forbidden");
      assertError(await h.req("POST", "/api/v1/users/987654/api-key"), 404);
      await h.req("DELETE", `/api/v1/users/${b.id}`);
      assertError(await h.req("POST", `/api/v1/users/${b.id}/api-key`), 409, "user_disabled");
    });

    await t.step("disableUser: 404 for unknown, 409 for oneself, tokens die at once", async () => {
      const u = await h.user("annotator");
      assert.equal((await u.req("GET", "/api/v1/me")).status, 200);
      assert.equal((await h.req("DELETE", `/api/v1/users/${u.id}`)).status, 204);
      assertError(await u.req("GET", "/api/v1/me"), 401, "invalid_token");
      assert.equal((await h.req("DELETE", `/api/v1/users/${u.id}`)).status, 204, "idempotent");
      assertError(await h.req("DELETE", "/api/v1/users/987654"), 404);
      assertError(await h.req("DELETE", `/api/v1/users/${h.admin.id}`), 409);
    });

    await t.step("another process sees a disabled user within the cache time", async () => {
      // A second app over the same database stands for a second server process.
      const other = createApp({
        db: h.db,
        config: testConfig({ AUTH_USER_CACHE_SECONDS: "1" }),
        log: silentLogger,
      });
      const u = await h.user("machine");
      const me = () =>
        other.request("/api/v1/me", { headers: { authorization: `Bearer ${u.token}` } });
      assert.equal((await me()).status, 200);
      await h.req("DELETE", `/api/v1/users/${u.id}`);
      await new Promise((r) => setTimeout(r, 1100));
      const res = await me();
      assert.equal(res.status, 401);
      await res.body?.cancel();
    });
  } finally {
    await h.close();
  }
});

Deno.test("auth: forged and broken tokens are refused", async (t) => {
  const h = await createTestApp();
  try {
    const me = (token: string | null, headers: Record<string, string> = {}) =>
      h.client(token)("GET", "/api/v1/me", undefined, headers);

    await t.step("no token: 401 with WWW-Authenticate", async () => {
      const res = await me(null);
      assertError(res, 401, "unauthorized");
      assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer/);
      assertError(await me(null, { authorization: "Basic YWRtaW46YWRtaW4=" }), 401);
      assertError(await me(null, { authorization: "Bearer" }), 401);
      assertError(await me("not.a.jwt"), 401, "invalid_token");
      assertError(await me("garbage"), 401, "invalid_token");
    });

    await t.step("alg none", async () => {
      const token = new UnsecuredJWT({ role: "admin" }).setSubject(h.admin.id)
        .setIssuer(TOKEN_ISSUER).setAudience(TOKEN_AUDIENCE).setIssuedAt()
        .setExpirationTime("10m").encode();
      assertError(await me(token), 401, "invalid_token");
    });

    await t.step("signature by another secret, or tampered payload", async () => {
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

    await t.step("expired, not yet valid, wrong iss, wrong aud", async () => {
      let res = await me(await ownToken(h.admin.id, { exp: now() - 10 }));
      assertError(res, 401, "invalid_token");
      assert.match(res.body.error.message, /expired/);
      res = await me(await ownToken(h.admin.id, { nbf: now() + 3600 }));
      assertError(res, 401, "invalid_token");
      assertError(await me(await ownToken(h.admin.id, { iss: "someone-else" })), 401);
      assertError(await me(await ownToken(h.admin.id, { aud: "another-api" })), 401);
      assert.equal((await me(await ownToken(h.admin.id))).status, 200, "control: valid token");
    });

    await t.step("a token accepted before is refused once it expires", async () => {
      // Verified tokens are remembered (the HMAC is skipped on repeats); expiry is not.
      const token = await ownToken(h.admin.id, { exp: now() + 2 });
      assert.equal((await me(token)).status, 200);
      assert.equal((await me(token)).status, 200);
      await new Promise((r) => setTimeout(r, 2100));
      const res = await me(token);
      assertError(res, 401, "invalid_token");
      assert.match(res.body.error.message, /expired/);
    });

    await t.step("a valid signature for a user that does not exist", async () => {
      assertError(await me(await ownToken("987654321")), 401, "invalid_token");
      assertError(await me(await ownToken("not-a-number")), 401, "invalid_token");
    });
  } finally {
    await h.close();
  }
});

Deno.test("auth: an external identity provider's tokens (JWKS)", async (t) => {
  const rsa = await generateKeyPair("RS256", { extractable: true });
  const rsa2 = await generateKeyPair("RS256", { extractable: true });
  const ec = await generateKeyPair("ES256", { extractable: true });
  const jwk = async (key: CryptoKey, kid: string, alg: string) => ({
    ...(await exportJWK(key)),
    kid,
    alg,
    use: "sig",
  });
  let keys = [await jwk(rsa.publicKey, "k1", "RS256"), await jwk(ec.publicKey, "e1", "ES256")];
  let fetches = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    if (new URL(req.url).pathname !== "/jwks.json") return new Response("no", { status: 404 });
    fetches++;
    return Response.json({ keys });
  });
  const issuer = "https://idp.example.test/";
  const h = await createTestApp({
    config: {
      AUTH_JWKS_URL: `http://127.0.0.1:${server.addr.port}/jwks.json`,
      AUTH_ISSUER: issuer,
      AUTH_AUDIENCE: "annotation-api",
      AUTH_ROLE_CLAIM: "app_role",
    },
  });
  const idpToken = (
    claims: Record<string, unknown>,
    opts: { key?: CryptoKey; kid?: string; alg?: string; iss?: string; aud?: string } = {},
  ) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: opts.alg ?? "RS256", kid: opts.kid ?? "k1" })
      .setSubject("auth0|alice")
      .setIssuer(opts.iss ?? issuer)
      .setAudience(opts.aud ?? "annotation-api")
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(opts.key ?? rsa.privateKey);
  const me = (token: string) => h.client(token)("GET", "/api/v1/me");
  try {
    await t.step(
      "a provider token with a role claim is a principal (created on first use)",
      async () => {
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

    await t.step("the key set is fetched once, then cached (not fetched per request)", async () => {
      const before = fetches;
      assert.ok(before >= 1);
      for (let i = 0; i < 5; i++) {
        const res = await me(await idpToken({ app_role: "annotator", n: i }));
        assert.equal(res.status, 200);
      }
      assert.equal(fetches, before, "known kids are verified from the cached key set");
    });

    await t.step("an expired provider token: 401", async () => {
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

    await t.step(
      "a disabled provider user is refused: at once here, within the cache elsewhere",
      async () => {
        // A second app over the same database stands for a second server process.
        const other = createApp({
          db: h.db,
          config: testConfig({
            AUTH_JWKS_URL: `http://127.0.0.1:${server.addr.port}/jwks.json`,
            AUTH_ISSUER: issuer,
            AUTH_AUDIENCE: "annotation-api",
            AUTH_ROLE_CLAIM: "app_role",
            AUTH_USER_CACHE_SECONDS: "1",
          }),
          log: silentLogger,
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
        await new Promise((r) => setTimeout(r, 1100));
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

    await t.step("no known role, wrong issuer or audience, foreign key: 401", async () => {
      assertError(await me(await idpToken({})), 401, "invalid_token");
      assertError(await me(await idpToken({ app_role: "superuser" })), 401);
      assertError(await me(await idpToken({ app_role: "admin" }, { iss: "https://evil/" })), 401);
      assertError(await me(await idpToken({ app_role: "admin" }, { aud: "other" })), 401);
      assertError(await me(await idpToken({ app_role: "admin" }, { key: rsa2.privateKey })), 401);
    });

    await t.step("HS256 signed with the provider's public key (algorithm confusion)", async () => {
      const publicJwk = JSON.stringify(await exportJWK(rsa.publicKey));
      for (const material of [publicJwk, JSON.stringify(keys[0])]) {
        const forged = await new SignJWT({ app_role: "admin", role: "admin" })
          .setProtectedHeader({ alg: "HS256", kid: "k1" })
          .setSubject("auth0|mallory").setIssuer(issuer).setAudience("annotation-api")
          .setIssuedAt().setExpirationTime("10m")
          .sign(new TextEncoder().encode(material));
        assertError(await me(forged), 401, "invalid_token");
      }
    });

    await t.step("a new signing key (unknown kid) is fetched from the JWKS", async () => {
      keys = [...keys, await jwk(rsa2.publicKey, "k2", "RS256")];
      const before = fetches;
      // jose waits at least its cooldown (2 s here) between fetches.
      await new Promise((r) => setTimeout(r, 2100));
      const res = await me(
        await idpToken({ app_role: "admin" }, { key: rsa2.privateKey, kid: "k2" }),
      );
      assert.equal(res.status, 200);
      assert.equal(res.body.role, "admin", "the role follows the token's claim");
      assert.ok(fetches > before, "the key set was refetched");
    });

    await t.step("a provider user cannot mint itself an API key; an admin can", async () => {
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
    });

    await t.step("our own HS256 tokens still work alongside", async () => {
      assert.equal((await h.req("GET", "/api/v1/me")).status, 200);
    });
  } finally {
    await h.close();
    await server.shutdown();
  }
});

Deno.test("auth: an identity provider whose key set cannot be had is 503, not 500 or 401", async (t) => {
  const rsa = await generateKeyPair("RS256", { extractable: true });
  const issuer = "https://idp.example.test/";
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
    const res = await app.request("/api/v1/me", { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: await res.json(), headers: res.headers };
  };
  try {
    await t.step("connection refused", async () => {
      const res = await me(appFor(`http://127.0.0.1:${closedPort}/jwks.json`));
      assertError(res, 503, "unavailable");
      assert.match(res.body.error.message, /identity provider/);
      assert.doesNotMatch(res.body.error.message, new RegExp(String(closedPort)));
    });

    await t.step("a name that does not resolve", async () => {
      const res = await me(appFor("http://idp.invalid/jwks.json"));
      assertError(res, 503, "unavailable");
    });

    const app = appFor(`http://127.0.0.1:${jwks.addr.port}/jwks.json`);
    await t.step("the key endpoint answers 500", async () => {
      assertError(await me(app), 503, "unavailable");
      assert.ok(fetches >= 1);
    });

    await t.step("the key endpoint answers something that is not a key set", async () => {
      mode = "html";
      assertError(await me(app), 503, "unavailable");
      mode = "not-a-jwks";
      assertError(await me(app), 503, "unavailable");
    });

    await t.step("once the provider is back, the same token works", async () => {
      mode = "ok";
      const res = await me(app);
      assert.equal(res.status, 200);
      assert.equal(res.body.name, "idp:auth0|bob");
    });

    await t.step("our own tokens never depended on it", async () => {
      const res = await appFor(`http://127.0.0.1:${closedPort}/jwks.json`).request("/api/v1/me", {
        headers: { authorization: `Bearer ${h.admin.token}` },
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
    });
  } finally {
    await h.close();
    await jwks.shutdown();
  }
});
