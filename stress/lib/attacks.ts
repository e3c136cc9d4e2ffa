/**
 * Attacks not already tested elsewhere, as one battery that runs in-process (tests/attacks_test.ts)
 * and against a real server (stress/scenarios/auth.ts). Already covered, and not repeated here:
 *
 * - alg none, a foreign secret, a tampered payload, expired / not-yet-valid tokens, wrong iss /
 *   aud, unknown users, expiry of remembered tokens: tests/auth_test.ts "forged and broken tokens"
 * - HS256 signed with the identity provider's public key (HS/RS confusion), foreign IdP keys,
 *   IdP tokens with no known role: tests/auth_test.ts "external identity provider"
 * - disabled users' keys and tokens (also from another process): tests/auth_test.ts
 * - every role × every operation (annotator → admin operations, machine → claims):
 *   tests/authz_matrix_test.ts
 * - machine → human annotations, the body choosing source or author: tests/annotations_test.ts
 * - renewing, releasing or submitting with another annotator's claim, a claim for another image:
 *   tests/claims_test.ts
 *
 * Here: other algorithms with the right secret (HS384/HS512), asymmetric tokens with no identity
 * provider configured, embedded `jwk` / `jku` / odd `kid` headers, tokens missing required claims,
 * huge and malformed Authorization headers, a role claim in our own token that is not the user's
 * role, ids of other datasets everywhere an id is taken, and SQL injection strings in every path
 * parameter, query parameter and body string of the spec, with the database checked unchanged.
 */
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { DIGEST_SQL, type Send, type Spec, type WireResponse } from "./fuzz.ts";

export { DIGEST_SQL };

export interface AttackSetup {
  send: Send;
  /** The server's HS256 secret (a test knows it; an attacker would not). */
  jwtSecret: string;
  issuer: string;
  audience: string;
  adminToken: string;
  digest(): Promise<string>;
}

export interface Outcome {
  attack: string;
  ok: boolean;
  detail: string;
}

export const SQL_INJECTION = [
  "' OR '1'='1",
  "1 OR 1=1",
  "1; DROP TABLE images; --",
  "1' OR 1=1 --",
  "'); DELETE FROM annotations; --",
  "1 UNION SELECT api_key_hash FROM users",
  "$1",
  "1::text",
  "'; SELECT pg_sleep(3); --",
  "\\x27 OR 1=1",
];

const b64 = (s: string) => btoa(s).replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");

function body(res: WireResponse): unknown {
  try {
    return JSON.parse(res.text);
  } catch {
    return res.text;
  }
}

function shaped(res: WireResponse): boolean {
  try {
    const b = JSON.parse(res.text);
    return typeof b?.error?.code === "string" && typeof b?.error?.message === "string";
  } catch {
    return false;
  }
}

/** Runs every attack; each outcome says whether it was refused as it should be. */
export async function runAttacks(setup: AttackSetup): Promise<Outcome[]> {
  const { send } = setup;
  const out: Outcome[] = [];
  const json = async (
    token: string | null,
    method: string,
    url: string,
    payload?: unknown,
    headers: Record<string, string> = {},
  ) => {
    const res = await send({
      method,
      url,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(payload === undefined ? {} : { "content-type": "application/json" }),
        ...headers,
      },
      body: payload === undefined ? undefined : JSON.stringify(payload),
    });
    // deno-lint-ignore no-explicit-any
    return { ...res, body: body(res) } as WireResponse & { body: any };
  };
  const expect = (attack: string, res: WireResponse, statuses: number[], shape = true) => {
    const ok = statuses.includes(res.status) && (res.status < 400 || !shape || shaped(res));
    out.push({ attack, ok, detail: `${res.status} ${res.text.slice(0, 160)}` });
    return ok;
  };

  // Fixtures: two datasets with images, two annotators, a machine.
  const admin = setup.adminToken;
  const tag = crypto.randomUUID().slice(0, 8);
  const user = async (role: string) => {
    const u = await json(admin, "POST", "/api/v1/users", {
      name: `atk-${tag}-${role}-${Math.random()}`,
      role,
    });
    const t = await json(null, "POST", "/api/v1/auth/token", { api_key: u.body.api_key });
    return { id: u.body.user.id as string, token: t.body.access_token as string };
  };
  const [annA, annB, machine] = [
    await user("annotator"),
    await user("annotator"),
    await user("machine"),
  ];
  const dataset = async (name: string, labels: string[]) => {
    const ds = await json(admin, "POST", "/api/v1/datasets", {
      name: `atk-${tag}-${name}`,
      labels,
    });
    const reg = await json(admin, "POST", `/api/v1/datasets/${ds.body.id}/images`, {
      images: [0, 1, 2].map((i) => ({
        uri: `s3://atk/${tag}/${name}/${i}.jpg`,
        external_id: `x${i}`,
        width: 10,
        height: 10,
      })),
    });
    return {
      id: ds.body.id as string,
      images: reg.body.images.map((i: { id: string }) => i.id) as string[],
    };
  };
  const A = await dataset("a", ["cat"]);
  const B = await dataset("b", ["car"]);
  const claimA = (await json(annA.token, "POST", `/api/v1/datasets/${A.id}/claims`)).body.claim;
  const claimB = (await json(annB.token, "POST", `/api/v1/datasets/${B.id}/claims`)).body.claim;

  // --- Tokens -----------------------------------------------------------------------------
  const secret = new TextEncoder().encode(setup.jwtSecret);
  const now = Math.floor(Date.now() / 1000);
  const base = () =>
    new SignJWT({ role: "admin" }).setSubject(annA.id).setIssuer(setup.issuer)
      .setAudience(setup.audience).setIssuedAt(now).setExpirationTime(now + 600);
  const me = (token: string) => json(token, "GET", "/api/v1/me");
  for (const alg of ["HS384", "HS512"]) {
    const token = await base().setProtectedHeader({ alg }).sign(secret);
    expect(`${alg} with the server's own secret (only HS256 is accepted)`, await me(token), [401]);
  }
  const rsa = await generateKeyPair("RS256", { extractable: true });
  const rs = await base().setProtectedHeader({ alg: "RS256", kid: "k1" }).sign(rsa.privateKey);
  expect("an RS256 token with no identity provider configured", await me(rs), [401]);
  const embedded = await base().setProtectedHeader({
    alg: "RS256",
    jwk: await exportJWK(rsa.publicKey),
  }).sign(rsa.privateKey);
  expect("an RS256 token carrying its own key (embedded jwk)", await me(embedded), [401]);
  const jku = await base().setProtectedHeader({ alg: "RS256", jku: "http://127.0.0.1:1/jwks.json" })
    .sign(rsa.privateKey);
  expect("an RS256 token pointing at the attacker's key set (jku)", await me(jku), [401]);
  const kid = await base().setProtectedHeader({ alg: "HS256", kid: "../../../../dev/null" })
    .sign(new TextEncoder().encode("x".repeat(32)));
  expect("an HS256 token with a path in kid, signed with a guessable key", await me(kid), [401]);
  const noExp = await new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(annA.id)
    .setIssuer(setup.issuer).setAudience(setup.audience).setIssuedAt(now).sign(secret);
  expect("a correctly signed token without exp", await me(noExp), [401]);
  const noSub = await new SignJWT({}).setProtectedHeader({ alg: "HS256" })
    .setIssuer(setup.issuer).setAudience(setup.audience).setIssuedAt(now)
    .setExpirationTime(now + 600).sign(secret);
  expect("a correctly signed token without sub", await me(noSub), [401]);
  const critical = await base().setProtectedHeader(
    { alg: "HS256", crit: ["x-unknown"], "x-unknown": 1 } as never,
  )
    .sign(secret).catch(() => null);
  if (critical) expect("a token with an unknown critical header", await me(critical), [401]);

  // Our own token for the annotator, saying role=admin: the role comes from the database.
  const claimsAdmin = await base().setProtectedHeader({ alg: "HS256" }).sign(secret);
  const meAsAdmin = await me(claimsAdmin);
  out.push({
    attack: "a valid token whose role claim says admin for an annotator",
    ok: meAsAdmin.status === 200 && meAsAdmin.body.role === "annotator",
    detail: `${meAsAdmin.status} ${meAsAdmin.text.slice(0, 120)}`,
  });
  expect(
    "  … and it still cannot create users",
    await json(claimsAdmin, "POST", "/api/v1/users", { name: `atk-${tag}-esc`, role: "admin" }),
    [403],
  );
  const [h, p, s] = annA.token.split(".");
  const swapped = JSON.parse(atob(p.replaceAll("-", "+").replaceAll("_", "/")));
  swapped.sub = "1";
  expect(
    "another user's sub spliced into a valid token",
    await me(`${h}.${b64(JSON.stringify(swapped))}.${s}`),
    [401],
  );
  // Deno's HTTP server refuses a head this large itself (400, empty body), before the app.
  expect("a 64 KiB bearer token", await me("a".repeat(65_536)), [401, 431, 400], false);
  for (
    const header of [
      "Bearer",
      "Bearer  ",
      `Bearer ${annA.token} extra`,
      `Token ${annA.token}`,
      `Bearer ${annA.token}\u0000`,
      "Bearer \u00e9\u00e9",
    ]
  ) {
    const res = await send({ method: "GET", url: "/api/v1/me", headers: { authorization: header } })
      .catch(
        (e) => ({ status: 0, headers: new Headers(), text: String(e) }),
      );
    if (res.status !== 0) {
      expect(`Authorization: ${JSON.stringify(header.slice(0, 20))}`, res, [401]);
    }
  }

  // --- Ids of other datasets ----------------------------------------------------------------
  const before = await setup.digest();
  expect(
    "an annotation on dataset B's image with a claim from dataset A",
    await json(annA.token, "POST", `/api/v1/images/${B.images[0]}/annotations`, {
      claim_id: claimA.id,
      labels: ["car"],
    }),
    [409],
  );
  expect(
    "an annotation with dataset A's labels on dataset B's image (admin correction)",
    await json(admin, "POST", `/api/v1/images/${B.images[0]}/annotations`, { labels: ["cat"] }),
    [422],
  );
  expect(
    "annotator A renews annotator B's claim in another dataset",
    await json(annA.token, "POST", `/api/v1/claims/${claimB.id}/renew`),
    [403],
  );
  expect(
    "annotator A releases annotator B's claim in another dataset",
    await json(annA.token, "DELETE", `/api/v1/claims/${claimB.id}`),
    [403],
  );
  const unchanged = (await setup.digest()) === before;
  out.push({
    attack: "  … none of the refused cross-dataset requests wrote anything",
    ok: unchanged,
    detail: unchanged ? "digest unchanged" : "the database changed",
  });
  const preds = await json(machine.token, "POST", `/api/v1/datasets/${A.id}/predictions`, {
    predictions: B.images.map((id) => ({ image_id: id, model: { name: "atk", version: "1" } })),
  });
  out.push({
    attack: "predictions into dataset A naming dataset B's images",
    ok: preds.status === 200 && preds.body.created === 0 &&
      preds.body.not_found.length === B.images.length,
    detail: `${preds.status} ${preds.text.slice(0, 160)}`,
  });
  const prio = await json(machine.token, "PUT", `/api/v1/datasets/${A.id}/priorities`, {
    priorities: B.images.map((id) => ({ image_id: id, priority: 99 })),
  });
  const bImage = await json(admin, "GET", `/api/v1/images/${B.images[0]}`);
  out.push({
    attack: "priorities in dataset A naming dataset B's images",
    ok: prio.status === 200 && prio.body.updated === 0 && bImage.body.priority !== 99,
    detail: `${prio.status} ${prio.text.slice(0, 120)}; B's image priority ${bImage.body.priority}`,
  });
  const page = await json(admin, "GET", `/api/v1/datasets/${A.id}/images?cursor=${B.images[0]}`);
  out.push({
    attack: "listImages of dataset A with a cursor from dataset B",
    ok: page.status === 200 &&
      page.body.items.every((i: { dataset_id: string }) => i.dataset_id === A.id),
    detail: `${page.status}, ${page.body.items?.length} items, all of dataset A`,
  });
  const ext = await json(machine.token, "POST", `/api/v1/datasets/${A.id}/predictions`, {
    predictions: [{ external_id: "x0", model: { name: "atk", version: "ext" } }],
  });
  const onA = await json(admin, "GET", `/api/v1/images/${A.images[0]}/annotations?source=machine`);
  const onB = await json(admin, "GET", `/api/v1/images/${B.images[0]}/annotations?source=machine`);
  out.push({
    attack: "an external_id both datasets use names only the dataset in the path",
    ok: ext.status === 200 && onA.body.items.length === 1 && onB.body.items.length === 0,
    detail: `${ext.status}; A's image has ${onA.body.items?.length}, B's ${onB.body.items?.length}`,
  });

  return out;
}

/** Valid bodies for the operations that take one, so each string in them can be poisoned. */
function bodies(ids: { image: string }): Record<string, unknown> {
  return {
    createToken: { api_key: "ak_x" },
    createUser: { name: "n", role: "annotator" },
    createDataset: { name: "n", description: "d", labels: ["a"] },
    updateDataset: { description: "d", labels: ["cat", "a"] },
    registerImages: { images: [{ uri: "s3://b/x.jpg", external_id: "e", metadata: { k: "v" } }] },
    updateImage: { metadata: { k: "v" } },
    setPriorities: {
      priorities: [{ external_id: "e", priority: 1 }, { image_id: ids.image, priority: 1 }],
    },
    createAnnotation: {
      claim_id: "1",
      labels: ["cat"],
      shapes: [{ type: "point", label: "cat", x: 1, y: 1 }],
    },
    createPredictions: {
      predictions: [{ external_id: "e", model: { name: "m", version: "v" }, labels: ["cat"] }],
    },
  };
}

/** Every string leaf of `value`, as paths. */
function stringPaths(value: unknown, at: (string | number)[] = []): (string | number)[][] {
  if (typeof value === "string") return [at];
  if (Array.isArray(value)) return value.flatMap((v, i) => stringPaths(v, [...at, i]));
  if (value && typeof value === "object") {
    return Object.entries(value).flatMap(([k, v]) => stringPaths(v, [...at, k]));
  }
  return [];
}

function replaced(value: unknown, path: (string | number)[], by: string): unknown {
  const copy = structuredClone(value) as Record<string | number, unknown>;
  let node = copy as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, unknown>;
  node[path[path.length - 1]] = by;
  return copy;
}

export interface InjectionReport {
  requests: number;
  /** Responses that were a 5xx, lacked the error shape, or (refused) changed the database. */
  failures: string[];
}

/**
 * Every SQL injection string in every path parameter, query parameter and body string of every
 * operation in the spec, as an admin (who passes every role check): never a 5xx, the error shape
 * on every refusal, and no change to the database from a refused request (a dropped table would
 * fail the digest itself).
 */
export async function injectEverywhere(
  setup: AttackSetup,
  spec: Spec,
  ids: { dataset: string; image: string },
): Promise<InjectionReport> {
  const report: InjectionReport = { requests: 0, failures: [] };
  const templates = bodies(ids);
  for (const [template, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const params = (op.parameters ?? []) as { name: string; in: string }[];
      const fill = (name: string) => (/dataset/i.test(name) ? ids.dataset : ids.image);
      const cases: { url: string; body?: unknown; where: string }[] = [];
      const baseBody = op.requestBody ? templates[op.operationId] ?? {} : undefined;
      const path = (over: Record<string, string> = {}) =>
        template.replace(/\{(\w+)\}/g, (_, k) => encodeURIComponent(over[k] ?? fill(k)));
      for (const sqli of SQL_INJECTION) {
        for (const p of params) {
          if (p.in === "path") {
            cases.push({ url: path({ [p.name]: sqli }), body: baseBody, where: `path ${p.name}` });
          } else if (p.in === "query") {
            cases.push({
              url: `${path()}?${p.name}=${encodeURIComponent(sqli)}`,
              body: baseBody,
              where: `query ${p.name}`,
            });
          }
        }
        for (const at of stringPaths(baseBody)) {
          cases.push({
            url: path(),
            body: replaced(baseBody, at, sqli),
            where: `body.${at.join(".")}`,
          });
        }
      }
      for (const c of cases) {
        const before = await setup.digest();
        const res = await setup.send({
          method: method.toUpperCase(),
          url: c.url,
          headers: {
            authorization: `Bearer ${setup.adminToken}`,
            ...(c.body === undefined ? {} : { "content-type": "application/json" }),
          },
          body: c.body === undefined || method === "get" ? undefined : JSON.stringify(c.body),
        });
        report.requests++;
        const problem = res.status >= 500
          ? `${res.status}`
          : res.status >= 400 && !shaped(res)
          ? "not the error shape"
          : res.status >= 400 && (await setup.digest()) !== before
          ? "refused, yet the database changed"
          : null;
        if (problem) {
          report.failures.push(
            `${op.operationId} ${c.where}: ${problem}: ${res.status} ${res.text.slice(0, 160)}`,
          );
        }
      }
    }
  }
  return report;
}
