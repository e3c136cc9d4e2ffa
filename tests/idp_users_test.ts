/**
 * Names of identity-provider users: `idp:` is reserved for them, long subjects get distinct
 * names, and a name taken before the reservation does not lock a provider user out.
 */
import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { externalUserNames } from "../lib/auth/keys.ts";
import { assertError, createTestApp, type Res, type TestApp, testConfig } from "./harness.ts";
import { runScript } from "../testkit/process.ts";

const ISSUER = "https://idp.example.test/";
const AUDIENCE = "annotation-api";

/** The provider's key pair: made once for the file (RSA key generation is slow), only read. */
let keyPair: Promise<CryptoKeyPair> | undefined;

/**
 * A test on a fresh app that trusts a provider (its own JWKS endpoint); `meAs(sub)` is GET /me
 * with a provider token for that subject.
 */
function withIdp(
  name: string,
  // deno-lint-ignore no-explicit-any
  fn: (t: { h: TestApp; meAs: (sub: string) => Promise<Res<any>> }) => Promise<void>,
): void {
  Deno.test(name, async () => {
    const rsa = await (keyPair ??= generateKeyPair("RS256", { extractable: true }));
    const publicJwk = { ...(await exportJWK(rsa.publicKey)), kid: "k1", alg: "RS256", use: "sig" };
    const jwks = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      () => Response.json({ keys: [publicJwk] }),
    );
    const h = await createTestApp({
      config: {
        AUTH_JWKS_URL: `http://127.0.0.1:${jwks.addr.port}/jwks.json`,
        AUTH_ISSUER: ISSUER,
        AUTH_AUDIENCE: AUDIENCE,
      },
    });
    const tokenFor = (sub: string, role = "annotator") =>
      new SignJWT({ role })
        .setProtectedHeader({ alg: "RS256", kid: "k1" })
        .setSubject(sub).setIssuer(ISSUER).setAudience(AUDIENCE)
        .setIssuedAt().setExpirationTime("10m").sign(rsa.privateKey);
    try {
      await fn({ h, meAs: async (sub) => h.client(await tokenFor(sub))("GET", "/api/v1/me") });
    } finally {
      await h.close();
      await jwks.shutdown();
    }
  });
}

withIdp("idp user names: createUser refuses names starting with idp:", async ({ h }) => {
  const res = await h.req("POST", "/api/v1/users", { name: "idp:auth0|carol", role: "admin" });
  assertError(res, 400, "validation_failed");
  assert.match(res.body.error.message, /body\.name: .*"idp:".*identity-provider/);
  // Only the exact prefix is reserved.
  const ok = await h.req("POST", "/api/v1/users", { name: "IDP-team", role: "annotator" });
  assert.equal(ok.status, 201);
});

Deno.test("idp user names: ADMIN_NAME may not take the prefix either", () => {
  assert.throws(() => testConfig({ ADMIN_NAME: "idp:root" }), /ADMIN_NAME: .*idp:/);
});

withIdp(
  "idp user names: a name taken before the reservation: the provider user gets another",
  async ({ h, meAs }) => {
    // As createUser could make it before `idp:` was reserved.
    await h.db`INSERT INTO users (name, role) VALUES ('idp:auth0|carol', 'machine')`;
    const res = await meAs("auth0|carol");
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.role, "annotator");
    assert.match(res.body.name, /^idp:auth0\|carol#[A-Za-z0-9_-]{43}$/);
    const again = await meAs("auth0|carol");
    assert.equal(again.status, 200);
    assert.equal(again.body.id, res.body.id, "the same user every time");
  },
);

withIdp(
  "idp user names: long subjects with a common start get different names",
  async ({ meAs }) => {
    const common = "x".repeat(210);
    const a = await meAs(`${common}-a`);
    const b = await meAs(`${common}-b`);
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(b.status, 200, JSON.stringify(b.body));
    assert.notEqual(a.body.id, b.body.id);
    assert.notEqual(a.body.name, b.body.name);
    for (const name of [a.body.name, b.body.name]) {
      assert.equal(Array.from(name).length, 200);
      assert.ok(name.startsWith(`idp:${"x".repeat(100)}`));
    }
    assert.equal((await meAs(`${common}-a`)).body.id, a.body.id);
  },
);

withIdp(
  "idp user names: short and long forms never coincide; multi-byte subjects count code points",
  async ({ meAs }) => {
    const short = await externalUserNames("auth0|dave");
    assert.equal(short.preferred, "idp:auth0|dave");
    const limit = await externalUserNames("y".repeat(195));
    assert.equal(limit.preferred, `idp:${"y".repeat(195)}`, "199 code points: as is");
    const over = await externalUserNames("y".repeat(196));
    assert.equal(Array.from(over.preferred).length, 200, "200 would be: hashed");
    assert.notEqual(over.preferred, limit.preferred);
    const emoji = await externalUserNames("😀".repeat(300));
    assert.equal(Array.from(emoji.preferred).length, 200);
    assert.ok(!emoji.preferred.includes("\uFFFD"), "no surrogate pair cut in half");
    const res = await meAs("😀".repeat(300));
    assert.equal(res.status, 200);
    assert.equal(res.body.name, emoji.preferred);
  },
);

Deno.test("user:create refuses idp: names (exit 2)", async () => {
  // Refused before any database is opened: no database is configured here.
  const { code, output } = await runScript(["scripts/user.ts", "idp:someone", "admin"], {
    APP_ENV: "test",
  });
  assert.equal(code, 2, output);
  assert.match(output, /must not start with "idp:"/);
  assert.match(output, /usage: deno task user:create/);
});
