/**
 * Rotating AUTH_JWT_SECRET without refusing anyone's token: AUTH_JWT_SECRET_ACCEPTED names a
 * second secret whose tokens verify too; tokens are always signed with AUTH_JWT_SECRET. The
 * replicas of a rolling deploy are apps with different configurations on one database.
 */
import assert from "node:assert/strict";
import { jwtVerify } from "jose";
import { createApp } from "../lib/http/app.ts";
import { hashApiKey, newApiKey } from "../lib/auth/keys.ts";
import { ConfigError } from "../lib/runtime/config.ts";
import { silentLogger } from "../lib/runtime/log.ts";
import { createUser } from "../sql/users/queries.ts";
import { createTestDb, testConfig } from "./harness.ts";

const OLD = "old-secret-old-secret-old-secret-0123456789";
const NEW = "new-secret-new-secret-new-secret-0123456789";

Deno.test("JWT secret rotation: the accepted secret verifies, only the current one signs", async (t) => {
  const tdb = await createTestDb(4);
  try {
    const apiKey = newApiKey();
    await createUser(tdb.db, {
      name: "rotating",
      role: "annotator",
      api_key_hash: await hashApiKey(apiKey),
    });
    const replica = (secrets: Record<string, string>) => {
      const app = createApp({ db: tdb.db, config: testConfig(secrets), log: silentLogger });
      return {
        async token(): Promise<string> {
          const res = await app.request("/api/v1/auth/token", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ api_key: apiKey }),
          });
          assert.equal(res.status, 200);
          return (await res.json()).access_token;
        },
        async me(token: string): Promise<number> {
          const res = await app.request("/api/v1/me", {
            headers: { authorization: `Bearer ${token}` },
          });
          await res.body?.cancel();
          return res.status;
        },
      };
    };
    // Before, step 1 (everyone also accepts the new secret), step 2 (sign with the new one, accept
    // the old), after (the old one dropped once its tokens expired).
    const before = replica({ AUTH_JWT_SECRET: OLD });
    const step1 = replica({ AUTH_JWT_SECRET: OLD, AUTH_JWT_SECRET_ACCEPTED: NEW });
    const step2 = replica({ AUTH_JWT_SECRET: NEW, AUTH_JWT_SECRET_ACCEPTED: OLD });
    const after = replica({ AUTH_JWT_SECRET: NEW });

    await t.step("tokens are signed with AUTH_JWT_SECRET only", async () => {
      const key = (s: string) => new TextEncoder().encode(s);
      await jwtVerify(await step1.token(), key(OLD));
      await jwtVerify(await step2.token(), key(NEW));
      await assert.rejects(async () => jwtVerify(await step2.token(), key(OLD)));
    });

    await t.step("during step 1, old and step-1 replicas take each other's tokens", async () => {
      assert.equal(await step1.me(await before.token()), 200);
      assert.equal(await before.me(await step1.token()), 200);
    });

    await t.step("during step 2, step-1 and step-2 replicas take each other's tokens", async () => {
      assert.equal(await step2.me(await step1.token()), 200, "an old token on a new replica");
      assert.equal(await step1.me(await step2.token()), 200, "a new token on an old replica");
    });

    await t.step("without the accepted secret, the other secret's tokens are refused", async () => {
      assert.equal(await after.me(await before.token()), 401);
      assert.equal(await before.me(await after.token()), 401);
      assert.equal(await after.me(await step2.token()), 200);
    });

    await t.step("a token signed with a third secret is refused even mid-rotation", async () => {
      const other = replica({ AUTH_JWT_SECRET: "z".repeat(40) });
      assert.equal(await step2.me(await other.token()), 401);
    });
  } finally {
    await tdb.close();
  }
});

Deno.test("AUTH_JWT_SECRET_ACCEPTED: at least 32 bytes, and not AUTH_JWT_SECRET again", () => {
  const problems = (vars: Record<string, string>) => {
    try {
      testConfig(vars);
    } catch (e) {
      if (e instanceof ConfigError) return e.problems;
      throw e;
    }
    return [];
  };
  assert.deepEqual(problems({ AUTH_JWT_SECRET_ACCEPTED: "short" }), [
    "AUTH_JWT_SECRET_ACCEPTED: must be at least 32 bytes",
  ]);
  assert.deepEqual(problems({ AUTH_JWT_SECRET: OLD, AUTH_JWT_SECRET_ACCEPTED: OLD }), [
    "AUTH_JWT_SECRET_ACCEPTED: the same as AUTH_JWT_SECRET; set the other secret of the " +
    "rotation, or unset it",
  ]);
  assert.equal(testConfig({ AUTH_JWT_SECRET_ACCEPTED: NEW }).auth.jwtAcceptedSecret, NEW);
});
