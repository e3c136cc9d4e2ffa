/**
 * Issue 7's auth attacks as one battery that runs in-process (tests/attacks_test.ts) and against a
 * real server (stress/scenarios/auth.ts), so the stress summary covers every kind it names:
 *
 * - tokens: alg none, a foreign secret, a tampered payload, expired and not-yet-valid tokens,
 *   wrong iss / aud, other algorithms with the right secret (HS384/HS512), asymmetric tokens with
 *   no identity provider configured, embedded `jwk` / `jku` / odd `kid` headers, tokens missing
 *   required claims, huge and malformed Authorization headers, a role claim in our own token that
 *   is not the user's role (the role comes from the database);
 * - with an identity provider (`AttackSetup.idp`, as the stress run configures one): HS256 signed
 *   with its public key (HS/RS confusion), a foreign key under its `kid`, wrong iss / aud, expiry,
 *   a role it does not know; a valid token of it is the control;
 * - a disabled user's token and API key;
 * - role escalation: an annotator calling admin and machine operations, a machine claiming,
 *   renewing, releasing or making human annotations;
 * - another annotator's claim in the same dataset (submit, renew, release), and ids of other
 *   datasets everywhere an id is taken;
 * - another team's dataset (one the caller is no member of): the ids of its images, claims and
 *   annotations and the cursors of its feed, in every operation that takes them, each answered
 *   exactly as an unknown id is, with none of its data and nothing written;
 * - SQL injection strings in every path parameter, query parameter and body string of the spec
 *   (`injectEverywhere`), with the database checked unchanged.
 *
 * Finer in-process tests of the same live in tests/auth_test.ts (remembered tokens expiring, a
 * disabled user seen by another process), tests/authz_matrix_test.ts (every role × every
 * operation), tests/annotations_test.ts and tests/claims_test.ts.
 */
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT } from "jose";
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
  /** An identity provider the server trusts (AUTH_JWKS_URL and friends), when it has one. */
  idp?: IdpSetup;
}

export interface IdpSetup {
  issuer: string;
  audience: string;
  /** AUTH_ROLE_CLAIM. */
  roleClaim: string;
  /** The key id and private key of a key in the provider's JWKS (RS256). */
  kid: string;
  privateKey: CryptoKey;
  /** The public JWK as the JWKS serves it (kid, alg, use included). */
  publicJwk: Record<string, unknown>;
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

  // Fixtures: two datasets with images, two annotators, a machine. Dataset A is the team of all
  // three; dataset B is annotator B's alone (access `members`, the default).
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
  for (const [ds, u] of [[A, annA], [A, annB], [A, machine], [B, annB]] as const) {
    await json(admin, "PUT", `/api/v1/datasets/${ds.id}/members/${u.id}`);
  }
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

  // Classic forgeries of our own tokens, each with a valid control beside it.
  const own = (opts: { exp?: number; nbf?: number; iss?: string; aud?: string } = {}) => {
    const jwt = new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(annA.id)
      .setIssuer(opts.iss ?? setup.issuer).setAudience(opts.aud ?? setup.audience)
      .setIssuedAt(now).setExpirationTime(opts.exp ?? now + 600);
    if (opts.nbf) jwt.setNotBefore(opts.nbf);
    return jwt;
  };
  const control = await me(await own().sign(secret));
  out.push({
    attack: "control: a valid token of ours is accepted (so the refusals below mean something)",
    ok: control.status === 200 && control.body.id === annA.id,
    detail: `${control.status} ${control.text.slice(0, 120)}`,
  });
  const none = new UnsecuredJWT({ role: "admin" }).setSubject(annA.id).setIssuer(setup.issuer)
    .setAudience(setup.audience).setIssuedAt(now).setExpirationTime(now + 600).encode();
  expect("alg none (an unsigned token)", await me(none), [401]);
  expect(
    "a token signed with another secret",
    await me(await own().sign(new TextEncoder().encode("another-secret-".repeat(4)))),
    [401],
  );
  const [ch, , cs] = (await own().sign(secret)).split(".");
  const tampered = b64(JSON.stringify({
    sub: annA.id,
    role: "admin",
    iss: setup.issuer,
    aud: setup.audience,
    iat: now,
    exp: now + 99_999,
  }));
  expect("a tampered payload under a valid signature", await me(`${ch}.${tampered}.${cs}`), [401]);
  expect("an expired token", await me(await own({ exp: now - 10 }).sign(secret)), [401]);
  expect(
    "a token not valid yet (nbf in an hour)",
    await me(await own({ nbf: now + 3600 }).sign(secret)),
    [401],
  );
  expect("a token of another issuer", await me(await own({ iss: "evil" }).sign(secret)), [401]);
  expect(
    "a token for another audience",
    await me(await own({ aud: "another-api" }).sign(secret)),
    [401],
  );

  // The identity provider's tokens, when the server trusts one.
  if (setup.idp) {
    const idp = setup.idp;
    const idpToken = (
      claims: Record<string, unknown>,
      opts: { key?: CryptoKey; iss?: string; aud?: string; exp?: number } = {},
    ) =>
      new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: idp.kid })
        .setSubject(`atk-${tag}`).setIssuer(opts.iss ?? idp.issuer)
        .setAudience(opts.aud ?? idp.audience).setIssuedAt(now)
        .setExpirationTime(opts.exp ?? now + 600).sign(opts.key ?? idp.privateKey);
    const valid = await me(await idpToken({ [idp.roleClaim]: "annotator" }));
    out.push({
      attack: "control: a valid token of the identity provider is accepted",
      ok: valid.status === 200 && valid.body.role === "annotator",
      detail: `${valid.status} ${valid.text.slice(0, 120)}`,
    });
    const { kid: _kid, alg: _alg, use: _use, ...bareJwk } = idp.publicJwk;
    for (
      const [what, material] of [
        ["its JWK as served", JSON.stringify(idp.publicJwk)],
        ["its bare public JWK", JSON.stringify(bareJwk)],
        ["its modulus", String(idp.publicJwk.n)],
      ]
    ) {
      const forged = await new SignJWT({ [idp.roleClaim]: "admin" })
        .setProtectedHeader({ alg: "HS256", kid: idp.kid }).setSubject(`atk-${tag}-mallory`)
        .setIssuer(idp.issuer).setAudience(idp.audience).setIssuedAt(now)
        .setExpirationTime(now + 600).sign(new TextEncoder().encode(material));
      expect(
        `HS/RS confusion: HS256 signed with the provider's public key (${what})`,
        await me(forged),
        [401],
      );
    }
    const foreign = await generateKeyPair("RS256", { extractable: true });
    expect(
      "an RS256 token under the provider's kid, signed with another key",
      await me(await idpToken({ [idp.roleClaim]: "admin" }, { key: foreign.privateKey })),
      [401],
    );
    expect(
      "a provider token with another issuer",
      await me(await idpToken({ [idp.roleClaim]: "admin" }, { iss: "https://evil.example/" })),
      [401],
    );
    expect(
      "a provider token for another audience",
      await me(await idpToken({ [idp.roleClaim]: "admin" }, { aud: "another-api" })),
      [401],
    );
    expect(
      "an expired provider token",
      await me(await idpToken({ [idp.roleClaim]: "admin" }, { exp: now - 10 })),
      [401],
    );
    expect(
      "a provider token naming a role that does not exist",
      await me(await idpToken({ [idp.roleClaim]: "superuser" })),
      [401],
    );
    const idpNone = new UnsecuredJWT({ [idp.roleClaim]: "admin" }).setSubject(`atk-${tag}`)
      .setIssuer(idp.issuer).setAudience(idp.audience).setIssuedAt(now)
      .setExpirationTime(now + 600).encode();
    expect("alg none with the provider's issuer", await me(idpNone), [401]);
  }

  // A disabled user: its token and its key stop working at once (this server disabled it).
  {
    const u = await json(admin, "POST", "/api/v1/users", {
      name: `atk-${tag}-disabled`,
      role: "annotator",
    });
    const t = await json(null, "POST", "/api/v1/auth/token", { api_key: u.body.api_key });
    const before = await me(t.body.access_token);
    out.push({
      attack: "control: the user's token works before it is disabled",
      ok: before.status === 200,
      detail: `${before.status}`,
    });
    expect(
      "  (the admin disables the user)",
      await json(admin, "DELETE", `/api/v1/users/${u.body.user.id}`),
      [204],
    );
    expect("a disabled user's token", await me(t.body.access_token), [401]);
    expect(
      "a disabled user's API key",
      await json(null, "POST", "/api/v1/auth/token", { api_key: u.body.api_key }),
      [401],
    );
    expect(
      "a disabled user's token on its claims",
      await json(t.body.access_token, "POST", `/api/v1/datasets/${A.id}/claims`),
      [401],
    );
  }

  // Role escalation and other annotators' claims: each refused, and nothing written.
  const claimB2 = (await json(annB.token, "POST", `/api/v1/datasets/${A.id}/claims`)).body.claim;
  const escalation = await setup.digest();
  const annotatorTries: [string, string, string, unknown?][] = [
    ["createUser", "POST", "/api/v1/users", { name: `atk-${tag}-root`, role: "admin" }],
    ["listUsers", "GET", "/api/v1/users"],
    ["disableUser", "DELETE", `/api/v1/users/${annB.id}`],
    ["rotateApiKey of another user", "POST", `/api/v1/users/${annB.id}/api-key`],
    ["createDataset", "POST", "/api/v1/datasets", { name: `atk-${tag}-x`, labels: ["a"] }],
    ["updateDataset", "PATCH", `/api/v1/datasets/${A.id}`, { description: "pwned" }],
    ["registerImages", "POST", `/api/v1/datasets/${A.id}/images`, {
      images: [{ uri: "s3://atk/x.jpg" }],
    }],
    ["setPriorities", "PUT", `/api/v1/datasets/${A.id}/priorities`, {
      priorities: [{ image_id: A.images[0], priority: 9 }],
    }],
    ["createPredictions", "POST", `/api/v1/datasets/${A.id}/predictions`, {
      predictions: [{ image_id: A.images[0], model: { name: "atk", version: "1" }, empty: true }],
    }],
    ["deleteImage", "DELETE", `/api/v1/images/${A.images[2]}`],
  ];
  for (const [op, method, url, payload] of annotatorTries) {
    expect(`annotator → ${op}`, await json(annA.token, method, url, payload), [403]);
  }
  const machineTries: [string, string, string, unknown?, number[]?][] = [
    ["claimNextImage", "POST", `/api/v1/datasets/${A.id}/claims`],
    ["renewClaim (an annotator's)", "POST", `/api/v1/claims/${claimA.id}/renew`],
    ["releaseClaim (an annotator's)", "DELETE", `/api/v1/claims/${claimA.id}`],
    ["createUser", "POST", "/api/v1/users", { name: `atk-${tag}-root2`, role: "admin" }],
    ["createDataset", "POST", "/api/v1/datasets", { name: `atk-${tag}-y`, labels: ["a"] }],
    [
      "a human annotation with an annotator's claim",
      "POST",
      `/api/v1/images/${claimA.image_id}/annotations`,
      { claim_id: claimA.id, labels: ["cat"] },
      [400],
    ],
    [
      "an annotation whose body says source human",
      "POST",
      `/api/v1/images/${A.images[0]}/annotations`,
      { source: "human", model: { name: "atk", version: "1" }, labels: ["cat"] },
      [400],
    ],
  ];
  for (const [op, method, url, payload, statuses] of machineTries) {
    expect(`machine → ${op}`, await json(machine.token, method, url, payload), statuses ?? [403]);
  }
  const theirs: [string, string, string, unknown?][] = [
    ["submits with", "POST", `/api/v1/images/${claimA.image_id}/annotations`, {
      claim_id: claimA.id,
      labels: ["cat"],
    }],
    ["renews", "POST", `/api/v1/claims/${claimA.id}/renew`],
    ["releases", "DELETE", `/api/v1/claims/${claimA.id}`],
  ];
  for (const [verb, method, url, payload] of theirs) {
    const res = await json(annB.token, method, url, payload);
    const ok = expect(`annotator B ${verb} annotator A's claim in the same dataset`, res, [403]);
    if (ok && res.body?.error?.code !== "claim_not_yours") {
      out[out.length - 1] = { ...out[out.length - 1], ok: false };
    }
  }
  const untouched = (await setup.digest()) === escalation;
  out.push({
    attack: "  … none of the escalations or claim thefts wrote anything",
    ok: untouched,
    detail: untouched ? "digest unchanged" : "the database changed",
  });
  const stillA = await json(annA.token, "POST", `/api/v1/claims/${claimA.id}/renew`);
  out.push({
    attack: "  … and annotator A's claim is still A's (A renews it)",
    ok: stillA.status === 200 && stillA.body.user_id === annA.id,
    detail: `${stillA.status} ${stillA.text.slice(0, 120)}`,
  });
  const made = await json(machine.token, "POST", `/api/v1/images/${A.images[1]}/annotations`, {
    model: { name: "atk", version: "1" },
    labels: ["cat"],
  });
  out.push({
    attack: "a machine's annotation is a machine one, whatever it tries",
    ok: made.status === 201 && made.body.source === "machine" && made.body.author_id === machine.id,
    detail: `${made.status} ${made.text.slice(0, 120)}`,
  });
  if (claimB2) {
    expect(
      "  (annotator B releases its own claim: allowed)",
      await json(annB.token, "DELETE", `/api/v1/claims/${claimB2.id}`),
      [204],
    );
  }

  // --- Ids of other datasets ----------------------------------------------------------------
  const before = await setup.digest();
  expect(
    "an annotation on dataset B's image with a claim from dataset A",
    await json(annA.token, "POST", `/api/v1/images/${B.images[0]}/annotations`, {
      claim_id: claimA.id,
      labels: ["car"],
    }),
    [404],
  );
  expect(
    "an annotation with dataset A's labels on dataset B's image (admin correction)",
    await json(admin, "POST", `/api/v1/images/${B.images[0]}/annotations`, { labels: ["cat"] }),
    [422],
  );
  expect(
    "annotator A renews annotator B's claim in another dataset (not A's: unknown to A)",
    await json(annA.token, "POST", `/api/v1/claims/${claimB.id}/renew`),
    [404],
  );
  expect(
    "annotator A releases annotator B's claim in another dataset (not A's: unknown to A)",
    await json(annA.token, "DELETE", `/api/v1/claims/${claimB.id}`),
    [404],
  );
  const unchanged = (await setup.digest()) === before;
  out.push({
    attack: "  … none of the refused cross-dataset requests wrote anything",
    ok: unchanged,
    detail: unchanged ? "digest unchanged" : "the database changed",
  });
  const preds = await json(machine.token, "POST", `/api/v1/datasets/${A.id}/predictions`, {
    predictions: B.images.map((id) => ({
      image_id: id,
      model: { name: "atk", version: "1" },
      empty: true,
    })),
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
    predictions: [{ external_id: "x0", model: { name: "atk", version: "ext" }, empty: true }],
  });
  const onA = await json(admin, "GET", `/api/v1/images/${A.images[0]}/annotations?source=machine`);
  const onB = await json(admin, "GET", `/api/v1/images/${B.images[0]}/annotations?source=machine`);
  out.push({
    attack: "an external_id both datasets use names only the dataset in the path",
    ok: ext.status === 200 && onA.body.items.length === 1 && onB.body.items.length === 0,
    detail: `${ext.status}; A's image has ${onA.body.items?.length}, B's ${onB.body.items?.length}`,
  });

  await anotherTeam({
    json,
    out,
    admin,
    tag,
    A,
    B,
    claimB,
    annA,
    annB,
    machine,
    user,
    digest: setup.digest,
  });
  return out;
}

type Json = (
  token: string | null,
  method: string,
  url: string,
  payload?: unknown,
) => Promise<WireResponse & { body: unknown }>;

/**
 * Dataset B belongs to annotator B alone; annotator A and the machine are not its members. Every
 * id of it (dataset, images, claim, annotations through its feed's cursors) in every operation
 * that takes one, by each of them: the answer must be exactly an unknown id's (ids aside), carry
 * none of B's data, and write nothing.
 */
async function anotherTeam(x: {
  json: Json;
  out: Outcome[];
  admin: string;
  tag: string;
  A: { id: string; images: string[] };
  B: { id: string; images: string[] };
  claimB: { id: string; image_id: string };
  annA: { token: string };
  annB: { token: string };
  machine: { token: string };
  user(role: string): Promise<{ id: string; token: string }>;
  digest(): Promise<string>;
}): Promise<void> {
  const { json, out, admin, A, B, claimB, annA, annB, machine } = x;
  // B's data: a human annotation (an admin's correction) so its feed and export have rows.
  const corrected = await json(admin, "POST", `/api/v1/images/${B.images[1]}/annotations`, {
    labels: ["car"],
  });
  const annotationB = (corrected.body as { id: string }).id;
  const feed = (await json(admin, "GET", `/api/v1/datasets/${B.id}/annotations`)).body as {
    next_cursor: string;
  };
  const cursor = encodeURIComponent(feed.next_cursor);
  const secrets = [`atk-${x.tag}-b`, `s3://atk/${x.tag}/b/`, '"car"'];
  const unknown = "999999999";
  type Probe = [who: string, token: string, method: string, path: string, payload?: unknown];
  type Kind = "dataset" | "image" | "claim" | "annotation";
  const probes = (id: (kind: Kind) => string): Probe[] => [
    ["annotator A", annA.token, "GET", `/api/v1/datasets/${id("dataset")}`],
    ["annotator A", annA.token, "GET", `/api/v1/datasets/${id("dataset")}/stats`],
    [
      "annotator A",
      annA.token,
      "GET",
      `/api/v1/datasets/${id("dataset")}/images?cursor=${B.images[0]}`,
    ],
    ["annotator A", annA.token, "GET", `/api/v1/datasets/${id("dataset")}/images?external_id=x0`],
    ["annotator A", annA.token, "GET", `/api/v1/images/${id("image")}`],
    ["annotator A", annA.token, "POST", `/api/v1/datasets/${id("dataset")}/claims`],
    ["annotator A", annA.token, "POST", `/api/v1/claims/${id("claim")}/renew`],
    ["annotator A", annA.token, "DELETE", `/api/v1/claims/${id("claim")}`],
    ["annotator A", annA.token, "POST", `/api/v1/images/${id("image")}/annotations`, {
      claim_id: claimB.id,
      labels: ["car"],
    }],
    ["annotator A", annA.token, "PUT", `/api/v1/annotations/${id("annotation")}`, {
      labels: ["car"],
    }],
    ["machine", machine.token, "GET", `/api/v1/datasets/${id("dataset")}`],
    ["machine", machine.token, "GET", `/api/v1/images/${id("image")}`],
    ["machine", machine.token, "GET", `/api/v1/images/${id("image")}/media`],
    ["machine", machine.token, "PATCH", `/api/v1/images/${id("image")}`, { priority: 9 }],
    ["machine", machine.token, "GET", `/api/v1/images/${id("image")}/annotations`],
    ["machine", machine.token, "POST", `/api/v1/images/${id("image")}/annotations`, {
      model: { name: "atk", version: "1" },
      labels: ["car"],
    }],
    ["machine", machine.token, "POST", `/api/v1/datasets/${id("dataset")}/images`, {
      images: [{ uri: "s3://atk/intruder.jpg", external_id: "x0" }],
    }],
    ["machine", machine.token, "POST", `/api/v1/datasets/${id("dataset")}/predictions`, {
      predictions: [{
        image_id: B.images[0],
        model: { name: "atk", version: "1" },
        labels: ["car"],
      }],
    }],
    ["machine", machine.token, "PUT", `/api/v1/datasets/${id("dataset")}/priorities`, {
      priorities: [{ external_id: "x0", priority: 9 }],
    }],
    ["machine", machine.token, "GET", `/api/v1/datasets/${id("dataset")}/annotations`],
    [
      "machine",
      machine.token,
      "GET",
      `/api/v1/datasets/${id("dataset")}/annotations?after=${cursor}&source=human`,
    ],
    ["machine", machine.token, "GET", `/api/v1/datasets/${id("dataset")}/export?format=coco`],
  ];
  const ofB = { dataset: B.id, image: claimB.image_id, claim: claimB.id, annotation: annotationB };
  /** Each probe with B's ids against the same with unknown ids: the answers must be one. */
  const probeAll = async (theirs: Probe[], none: Probe[], ids: string[]) => {
    // Ids (B's, and the unknown one) read as {id} on both sides: a body may echo the ids sent.
    const idsRead = [...ids, unknown].map((id) => new RegExp(`\\b${id}\\b`, "g"));
    const normal = (r: WireResponse) =>
      idsRead.reduce((t, re) => t.replace(re, "{id}"), `${r.status} ${r.text}`);
    for (const [i, [who, token, method, path, payload]] of theirs.entries()) {
      const res = await json(token, method, path, payload);
      const ref = await json(token, method, none[i][3], none[i][4]);
      const same = normal(res) === normal(ref);
      const leaked = secrets.filter((s) => res.text.includes(s));
      out.push({
        attack: `${who}, no member of B: ${method} ${path.replace(/\?.*/, "")} with B's ids`,
        ok: res.status === 404 && same && !leaked.length,
        detail:
          `${res.status} ${res.text.slice(0, 120)}${same ? "" : `; unknown id: ${ref.text}`}` +
          (leaked.length ? `; B's data: ${leaked.join(", ")}` : ""),
      });
    }
  };
  const before = await x.digest();
  await probeAll(probes((kind) => ofB[kind]), probes(() => unknown), Object.values(ofB));
  for (const [who, token] of [["annotator A", annA.token], ["machine", machine.token]]) {
    const list = await json(token, "GET", "/api/v1/datasets");
    const ids = (list.body as { items?: { id: string }[] }).items?.map((d) => d.id) ?? [];
    out.push({
      attack: `${who}: listDatasets leaves out dataset B`,
      ok: list.status === 200 && ids.includes(A.id) && !ids.includes(B.id) &&
        !secrets.some((s) => list.text.includes(s)),
      detail: `${list.status} ${ids.join(",")}`,
    });
  }
  const onA = await json(
    machine.token,
    "GET",
    `/api/v1/datasets/${A.id}/annotations?after=${cursor}&limit=1000`,
  );
  out.push({
    attack: "the machine polls dataset A's feed with a cursor of B's: only A's rows",
    ok: onA.status === 200 &&
      (onA.body as { items: { dataset_id: string }[] }).items.every((a) => a.dataset_id === A.id),
    detail: `${onA.status} ${onA.text.slice(0, 120)}`,
  });
  const unchanged = (await x.digest()) === before;
  out.push({
    attack: "  … none of the probes of another team's dataset wrote anything",
    ok: unchanged,
    detail: unchanged ? "digest unchanged" : "the database changed",
  });

  // Reviews: B's claimed image, submitted, waits for review (review_rate 1) and is held by B's
  // own reviewer; a reviewer of team A probes the queue, the lease and the decision.
  const [reviewerA, reviewerB] = [await x.user("reviewer"), await x.user("reviewer")];
  for (const [ds, u] of [[A, reviewerA], [B, reviewerB]] as const) {
    await json(admin, "PUT", `/api/v1/datasets/${ds.id}/members/${u.id}`);
  }
  await json(admin, "PATCH", `/api/v1/datasets/${B.id}`, { review_rate: 1 });
  const submitted = await json(
    annB.token,
    "POST",
    `/api/v1/images/${claimB.image_id}/annotations`,
    {
      claim_id: claimB.id,
      labels: ["car"],
    },
  );
  const held = await json(reviewerB.token, "POST", `/api/v1/datasets/${B.id}/reviews`);
  const reviewB = (held.body as { review?: { id: string; image_id: string } }).review;
  out.push({
    attack: "  (setup: an image of B in review, held by B's reviewer)",
    ok: submitted.status === 201 && held.status === 201 && reviewB?.image_id === claimB.image_id,
    detail: `submit ${submitted.status}, claimNextReview ${held.status} ${held.text.slice(0, 80)}`,
  });
  if (!reviewB) return;
  const reviewProbes = (id: (kind: "dataset" | "image" | "review") => string): Probe[] => [
    ["reviewer A", reviewerA.token, "POST", `/api/v1/datasets/${id("dataset")}/reviews`],
    ["reviewer A", reviewerA.token, "POST", `/api/v1/reviews/${id("review")}/renew`],
    ["reviewer A", reviewerA.token, "DELETE", `/api/v1/reviews/${id("review")}`],
    ["reviewer A", reviewerA.token, "POST", `/api/v1/images/${id("image")}/reviews`, {
      claim_id: reviewB.id,
      decision: "accept",
    }],
    ["reviewer A", reviewerA.token, "GET", `/api/v1/images/${id("image")}/annotations`],
  ];
  const ofReview = { dataset: B.id, image: reviewB.image_id, review: reviewB.id };
  const beforeReview = await x.digest();
  await probeAll(
    reviewProbes((kind) => ofReview[kind]),
    reviewProbes(() => unknown),
    Object.values(ofReview),
  );
  const untouched = (await x.digest()) === beforeReview;
  out.push({
    attack: "  … none of the probes of another team's review wrote anything",
    ok: untouched,
    detail: untouched ? "digest unchanged" : "the database changed",
  });
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
