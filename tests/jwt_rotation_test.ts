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
import { testConfig, withDb } from "./harness.ts";

const OLD = "old-secret-old-secret-old-secret-0123456789";
const NEW = "new-secret-new-secret-new-secret-0123456789";

// JWT secret rotation: the accepted secret verifies, only the current one signs.

interface Replicas {
  /** An app with these secrets over the test's database (a replica of a rolling deploy). */
  replica(secrets: Record<string, string>): {
    token(): Promise<string>;
    me(token: string): Promise<number>;
  };
  // Before, step 1 (everyone also accepts the new secret), step 2 (sign with the new one, accept
  // the old), after (the old one dropped once its tokens expired).
  before: ReturnType<Replicas["replica"]>;
  step1: ReturnType<Replicas["replica"]>;
  step2: ReturnType<Replicas["replica"]>;
  after: ReturnType<Replicas["replica"]>;
}

/** A test on its own database with one user, and the replicas of each stage of a rotation. */
function withRotation(name: string, fn: (r: Replicas) => Promise<void>): void {
  withDb(name, { poolMax: 4 }, async (tdb) => {
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
    await fn({
      replica,
      before: replica({ AUTH_JWT_SECRET: OLD }),
      step1: replica({ AUTH_JWT_SECRET: OLD, AUTH_JWT_SECRET_ACCEPTED: NEW }),
      step2: replica({ AUTH_JWT_SECRET: NEW, AUTH_JWT_SECRET_ACCEPTED: OLD }),
      after: replica({ AUTH_JWT_SECRET: NEW }),
    });
  });
}

withRotation(
  "JWT secret rotation: tokens are signed with AUTH_JWT_SECRET only",
  async ({ step1, step2 }) => {
    const key = (s: string) => new TextEncoder().encode(s);
    await jwtVerify(await step1.token(), key(OLD));
    await jwtVerify(await step2.token(), key(NEW));
    await assert.rejects(async () => jwtVerify(await step2.token(), key(OLD)));
  },
);

withRotation(
  "JWT secret rotation: during step 1, old and step-1 replicas take each other's tokens",
  async ({ before, step1 }) => {
    assert.equal(await step1.me(await before.token()), 200);
    assert.equal(await before.me(await step1.token()), 200);
  },
);

withRotation(
  "JWT secret rotation: during step 2, step-1 and step-2 replicas take each other's tokens",
  async ({ step1, step2 }) => {
    assert.equal(await step2.me(await step1.token()), 200, "an old token on a new replica");
    assert.equal(await step1.me(await step2.token()), 200, "a new token on an old replica");
  },
);

withRotation(
  "JWT secret rotation: without the accepted secret, the other secret's tokens are refused",
  async ({ before, step2, after }) => {
    assert.equal(await after.me(await before.token()), 401);
    assert.equal(await before.me(await after.token()), 401);
    assert.equal(await after.me(await step2.token()), 200);
  },
);

withRotation(
  "JWT secret rotation: a token signed with a third secret is refused even mid-rotation",
  async ({ replica, step2 }) => {
    const other = replica({ AUTH_JWT_SECRET: "z".repeat(40) });
    assert.equal(await step2.me(await other.token()), 401);
  },
);

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
