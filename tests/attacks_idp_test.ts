/**
 * The attack battery (testkit/attacks.ts) with an identity provider configured, as the stress
 * run configures one: its HS/RS-confusion, foreign-key, iss/aud, expiry and unknown-role attacks
 * run in-process too (tests/attacks_test.ts runs the battery without a provider).
 */
import assert from "node:assert/strict";
import { exportJWK, generateKeyPair } from "jose";
import { type IdpSetup, runAttacks } from "../testkit/attacks.ts";
import { attackSetup, createTestApp } from "./harness.ts";

Deno.test("attacks with an identity provider trusted", async () => {
  const rsa = await generateKeyPair("RS256", { extractable: true });
  const publicJwk = {
    ...(await exportJWK(rsa.publicKey)),
    kid: "idp-k1",
    alg: "RS256",
    use: "sig",
  };
  const jwks = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => Response.json({ keys: [publicJwk] }),
  );
  const idp: IdpSetup = {
    issuer: "https://idp.attacks.test/",
    audience: "annotation-attacks",
    roleClaim: "role",
    kid: "idp-k1",
    privateKey: rsa.privateKey,
    publicJwk,
  };
  const h = await createTestApp({
    config: {
      AUTH_JWKS_URL: `http://127.0.0.1:${jwks.addr.port}/jwks.json`,
      AUTH_ISSUER: idp.issuer,
      AUTH_AUDIENCE: idp.audience,
      AUTH_ROLE_CLAIM: idp.roleClaim,
    },
  });
  try {
    const outcomes = await runAttacks(attackSetup(h, idp));
    assert.deepEqual(outcomes.filter((o) => !o.ok).map((o) => `${o.attack}: ${o.detail}`), []);
    const names = outcomes.map((o) => o.attack).join("\n");
    for (
      const kind of [
        /alg none/,
        /HS\/RS confusion/,
        /expired token/,
        /not valid yet/,
        /another issuer/,
        /another audience/,
        /disabled user's token/,
        /annotator → createUser/,
        /machine → a human annotation/,
        /annotator B releases annotator A's claim in the same dataset/,
        /control: a valid token of the identity provider/,
      ]
    ) {
      assert.match(names, kind);
    }
  } finally {
    await h.close();
    await jwks.shutdown();
  }
});
