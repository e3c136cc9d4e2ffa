/**
 * Signatures against published vectors, not only against themselves: AWS's presigned-URL example
 * through the SDK presigner as the server uses it (lib/media/s3.ts), an independent SigV4 written
 * here (checked on the same vector) for the gs:// URLs, RFC 4231 for the URL tokens' HMAC, and
 * the credential chain reading a shared credentials file. No database.
 */
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { fromNodeProviderChain } from "@aws-sdk/credential-providers";
import { FixedKeyHmac } from "../lib/auth/hmac.ts";
import { createUrlTokens, rawPath } from "../lib/auth/url_tokens.ts";
import {
  createMedia,
  MEDIA_MARGIN_MS,
  type MediaAnswer,
  type MediaLink,
} from "../lib/media/index.ts";
import { ObjectSigner } from "../lib/media/s3.ts";
import { testConfig } from "./harness.ts";

/**
 * AWS's example of a presigned URL ("Authenticating Requests: Using Query Parameters (AWS
 * Signature Version 4)", Amazon S3 API reference): GET examplebucket/test.txt on 24 May 2013,
 * valid 86,400 s, with the documentation's example keys.
 */
const AWS_EXAMPLE = {
  accessKeyId: "AKIAIOSFODNN7EXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  date: Date.UTC(2013, 4, 24),
  url: "https://examplebucket.s3.amazonaws.com/test.txt" +
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256" +
    "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request" +
    "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host" +
    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
};

const link = (a: MediaAnswer | Promise<MediaAnswer>) =>
  Promise.resolve(a).then((r) => {
    if ("unavailable" in r) throw new Error(r.unavailable);
    return r as MediaLink;
  });

/** The URL's query, in its order. */
const queryOf = (url: string) => [...new URL(url).searchParams];

/**
 * SigV4 for a presigned GET, written from AWS's description independently of the SDK: the
 * canonical request, the string to sign, the derived key. Checks a URL's signature.
 */
function sigv4Signature(url: string, secret: string): string {
  const u = new URL(url);
  const params = [...u.searchParams].filter(([k]) => k !== "X-Amz-Signature");
  const enc = (s: string) =>
    encodeURIComponent(s).replace(
      /[!'()*]/g,
      (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    );
  const query = params.map(([k, v]) => [enc(k), enc(v)]).sort(([a], [b]) => a < b ? -1 : 1)
    .map(([k, v]) => `${k}=${v}`).join("&");
  const canonical = ["GET", u.pathname, query, `host:${u.host}`, "", "host", "UNSIGNED-PAYLOAD"]
    .join("\n");
  const date = u.searchParams.get("X-Amz-Date")!;
  const scope = u.searchParams.get("X-Amz-Credential")!.split("/").slice(1).join("/");
  const toSign = [
    "AWS4-HMAC-SHA256",
    date,
    scope,
    createHash("sha256").update(canonical).digest("hex"),
  ].join("\n");
  const [day, region, service, terminator] = scope.split("/");
  let key: Buffer | string = `AWS4${secret}`;
  for (const part of [day, region, service, terminator]) {
    key = createHmac("sha256", key).update(part).digest();
  }
  return createHmac("sha256", key).update(toSign).digest("hex");
}

Deno.test("s3://: AWS's documented presigned URL, through the SDK presigner the server uses", async () => {
  const config = testConfig({
    AWS_REGION: "us-east-1",
    // The example's host: the bucket's virtual host on the global endpoint.
    AWS_ENDPOINT_URL_S3: "https://s3.amazonaws.com",
    AWS_ACCESS_KEY_ID: AWS_EXAMPLE.accessKeyId,
    AWS_SECRET_ACCESS_KEY: AWS_EXAMPLE.secretAccessKey,
  });
  const media = createMedia(config, { now: () => AWS_EXAMPLE.date });
  // `link` adds its margin to the time asked for: ask for 86,400 s in all.
  const until = new Date(AWS_EXAMPLE.date + 86_400_000 - MEDIA_MARGIN_MS);
  const got = await link(media.link("s3://examplebucket/test.txt", until, "http://unused"));
  assert.equal(got.url, AWS_EXAMPLE.url);
  assert.equal(got.expiresAt.getTime(), AWS_EXAMPLE.date + 86_400_000);
  // The independent SigV4 agrees with AWS on its own example.
  assert.equal(
    sigv4Signature(AWS_EXAMPLE.url, AWS_EXAMPLE.secretAccessKey),
    new URL(AWS_EXAMPLE.url).searchParams.get("X-Amz-Signature"),
  );
});

Deno.test("s3://: the SDK's endpoint rules pick the host; keys are encoded; 7 days at most", async () => {
  const now = Date.UTC(2026, 0, 15, 12);
  const media = (vars: Record<string, string>) =>
    createMedia(
      testConfig({
        AWS_ACCESS_KEY_ID: AWS_EXAMPLE.accessKeyId,
        AWS_SECRET_ACCESS_KEY: AWS_EXAMPLE.secretAccessKey,
        ...vars,
      }),
      { now: () => now },
    );
  const until = new Date(now + 3600_000);
  const eu = await link(
    media({ AWS_REGION: "eu-west-1" }).link("s3://pics/a b/c+d(1).jpg", until, "http://x"),
  );
  assert.ok(
    eu.url.startsWith("https://pics.s3.eu-west-1.amazonaws.com/a%20b/c%2Bd%281%29.jpg?"),
    eu.url,
  );
  const q = new Map(queryOf(eu.url));
  assert.equal(
    q.get("X-Amz-Credential"),
    "AKIAIOSFODNN7EXAMPLE/20260115/eu-west-1/s3/aws4_request",
  );
  assert.equal(q.get("X-Amz-SignedHeaders"), "host");
  assert.equal(q.get("X-Amz-Expires"), String(3600 + MEDIA_MARGIN_MS / 1000));
  assert.equal(sigv4Signature(eu.url, AWS_EXAMPLE.secretAccessKey), q.get("X-Amz-Signature"));

  // A dotted bucket cannot be a virtual host under TLS: path-style.
  const dotted = await link(media({ AWS_REGION: "us-east-1" }).link("s3://a.b.c/k", until, "x"));
  assert.ok(dotted.url.startsWith("https://s3.us-east-1.amazonaws.com/a.b.c/k?"), dotted.url);

  const minio = await link(
    media({ AWS_ENDPOINT_URL_S3: "http://localhost:9000", S3_FORCE_PATH_STYLE: "true" })
      .link("s3://pics/x.png", until, "x"),
  );
  assert.ok(minio.url.startsWith("http://localhost:9000/pics/x.png?"), minio.url);
  assert.equal(
    sigv4Signature(minio.url, AWS_EXAMPLE.secretAccessKey),
    new URL(minio.url).searchParams.get("X-Amz-Signature"),
  );

  const week = await link(
    media({ AWS_REGION: "us-east-1" }).link("s3://pics/x", new Date(now + 30 * 86_400_000), "x"),
  );
  assert.equal(new URL(week.url).searchParams.get("X-Amz-Expires"), String(7 * 86_400));
  assert.equal(week.expiresAt.getTime(), now + 7 * 86_400_000);
});

Deno.test("s3://: temporary credentials add their session token and bound the URL's life", async () => {
  const now = Date.UTC(2026, 0, 15, 12);
  const expiration = new Date(now + 20 * 60_000);
  const signer = new ObjectSigner({
    scheme: "s3",
    region: "us-east-1",
    endpoint: undefined,
    forcePathStyle: false,
    credentials: () =>
      Promise.resolve({
        accessKeyId: "ASIAEXAMPLE",
        secretAccessKey: "secret",
        sessionToken: "token/with+chars=",
        expiration,
      }),
    now: () => now,
  });
  const got = await link(signer.sign("pics", "k.jpg", new Date(now + 3600_000)));
  const q = new URL(got.url).searchParams;
  assert.equal(q.get("X-Amz-Security-Token"), "token/with+chars=");
  assert.equal(q.get("X-Amz-Expires"), String(20 * 60));
  assert.equal(got.expiresAt.getTime(), expiration.getTime());
  assert.equal(sigv4Signature(got.url, "secret"), q.get("X-Amz-Signature"));
});

Deno.test("s3://: signatures stay right across keys and days signed in turn (each key's HMAC is kept)", async () => {
  // lib/media/s3.ts keeps an HMAC per key (the secret access keys, the days' signing keys): URLs
  // signed in turn with several keys and on several days must each verify against the independent
  // SigV4, including a secret long enough that its HMAC key is hashed first (over 64 bytes).
  const secrets = ["secret-one", "secret-two", "s".repeat(80)];
  const days = [Date.UTC(2026, 0, 15, 12), Date.UTC(2026, 0, 16, 12)];
  let now = days[0];
  const signers = secrets.map((secret, i) =>
    new ObjectSigner({
      scheme: "s3",
      region: i === 1 ? "eu-west-1" : "us-east-1",
      endpoint: undefined,
      forcePathStyle: false,
      credentials: () => Promise.resolve({ accessKeyId: `AKIA${i}`, secretAccessKey: secret }),
      now: () => now,
    })
  );
  for (const day of [...days, ...days]) {
    now = day;
    for (const [i, signer] of signers.entries()) {
      const got = await link(signer.sign("pics", `k${i}.jpg`, new Date(now + 3600_000)));
      const q = new URL(got.url).searchParams;
      assert.equal(sigv4Signature(got.url, secrets[i]), q.get("X-Amz-Signature"), got.url);
    }
  }
});

Deno.test("s3://: a credential provider that fails gives 'no credentials', and is not asked per URL", async () => {
  let asked = 0;
  let now = Date.UTC(2026, 0, 15, 12);
  const signer = new ObjectSigner({
    scheme: "s3",
    region: "us-east-1",
    endpoint: undefined,
    forcePathStyle: false,
    credentials: () => {
      asked++;
      return Promise.reject(new Error("Could not load credentials from any providers"));
    },
    now: () => now,
  });
  const first = await signer.sign("pics", "k", new Date(now + 60_000));
  assert.deepEqual(first, {
    unavailable: "no credentials for s3://: Could not load credentials from any providers",
  });
  for (let i = 0; i < 50; i++) await signer.sign("pics", "k", new Date(now + 60_000));
  assert.equal(asked, 1, "the failure is kept for 30 s");
  now += 31_000;
  await signer.sign("pics", "k", new Date(now + 60_000));
  assert.equal(asked, 2);
});

Deno.test("s3://: the SDK's default chain finds keys in a shared credentials file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aws-chain-" });
  const vars = ["AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_EC2_METADATA_DISABLED"];
  const saved = vars.map((k) => Deno.env.get(k));
  try {
    await Deno.writeTextFile(
      `${dir}/credentials`,
      "[default]\naws_access_key_id = AKIDFROMFILE\naws_secret_access_key = file-secret\n",
    );
    Deno.env.set("AWS_SHARED_CREDENTIALS_FILE", `${dir}/credentials`);
    Deno.env.set("AWS_CONFIG_FILE", `${dir}/config`);
    // Never the instance metadata service from a test (it is a network address).
    Deno.env.set("AWS_EC2_METADATA_DISABLED", "true");
    const media = createMedia(testConfig({ AWS_REGION: "eu-central-1" }), {
      s3Credentials: fromNodeProviderChain({ ignoreCache: true }),
    });
    const got = await link(media.link("s3://pics/k.jpg", new Date(Date.now() + 60_000), "x"));
    const q = new URL(got.url).searchParams;
    assert.match(
      q.get("X-Amz-Credential")!,
      /^AKIDFROMFILE\/\d{8}\/eu-central-1\/s3\/aws4_request$/,
    );
    assert.equal(sigv4Signature(got.url, "file-secret"), q.get("X-Amz-Signature"));
  } finally {
    vars.forEach((k, i) =>
      saved[i] === undefined ? Deno.env.delete(k) : Deno.env.set(k, saved[i]!)
    );
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gs://: SigV4 with the HMAC key, path-style on Cloud Storage's XML API", async () => {
  const now = Date.UTC(2026, 0, 15, 12);
  const media = createMedia(
    testConfig({
      GCS_HMAC_ACCESS_KEY_ID: "GOOGTS7C7FUP3AIRVJTE2BCD",
      GCS_HMAC_SECRET: "hmac-secret",
    }),
    { now: () => now },
  );
  const got = await link(media.link("gs://my-bucket/cats/1.jpg", new Date(now), "x"));
  assert.ok(got.url.startsWith("https://storage.googleapis.com/my-bucket/cats/1.jpg?"), got.url);
  const q = new URL(got.url).searchParams;
  assert.equal(q.get("X-Amz-Algorithm"), "AWS4-HMAC-SHA256");
  assert.equal(q.get("X-Amz-Credential"), "GOOGTS7C7FUP3AIRVJTE2BCD/20260115/auto/s3/aws4_request");
  assert.equal(q.get("X-Amz-SignedHeaders"), "host");
  assert.equal(sigv4Signature(got.url, "hmac-secret"), q.get("X-Amz-Signature"));
});

Deno.test("URL tokens: HMAC-SHA256 per RFC 4231 and node:crypto; expiry, alteration, other paths", () => {
  // RFC 4231, test case 2.
  assert.equal(
    new FixedKeyHmac(new TextEncoder().encode("Jefe")).digest("what do ya want for nothing?")
      .toString("hex"),
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
  );
  for (const size of [0, 1, 32, 63, 64, 65, 131]) {
    const key = crypto.getRandomValues(new Uint8Array(size));
    const message = `message-${size}`;
    assert.equal(
      new FixedKeyHmac(key).digest(message).toString("hex"),
      createHmac("sha256", key).update(message).digest("hex"),
      `key of ${size} bytes`,
    );
  }
  const tokens = createUrlTokens("a-secret-of-at-least-32-bytes-0123456789");
  const now = new Date(Date.UTC(2026, 0, 1));
  const token = tokens.sign("/media/local/a.jpg", new Date(now.getTime() + 60_000));
  assert.match(token, /^\d+\.[A-Za-z0-9_-]{43}$/);
  assert.equal(tokens.check("/media/local/a.jpg", token, now), "ok");
  assert.equal(
    tokens.check("/media/local/a.jpg", token, new Date(now.getTime() + 60_000)),
    "expired",
  );
  assert.equal(tokens.check("/media/local/b.jpg", token, now), "invalid");
  assert.equal(
    tokens.check("/media/local/a.jpg", token.replace(/^\d+/, (d) => `${+d + 1}`), now),
    "invalid",
  );
  assert.equal(tokens.check("/media/local/a.jpg", "", now), "invalid");
  // Never the JWT secret itself: the key is derived under its own label.
  const jwtLike = createHmac("sha256", "a-secret-of-at-least-32-bytes-0123456789")
    .update(`/media/local/a.jpg\n${token.split(".")[0]}`).digest("base64url");
  assert.notEqual(token.split(".")[1], jwtLike);

  // A rotation: tokens of the accepted secret still open their URL; new ones use the new secret.
  const rotated = createUrlTokens(
    "the-new-secret-of-at-least-32-bytes-012345",
    "a-secret-of-at-least-32-bytes-0123456789",
  );
  assert.equal(rotated.check("/media/local/a.jpg", token, now), "ok");
  assert.equal(
    tokens.check(
      "/media/local/a.jpg",
      rotated.sign("/media/local/a.jpg", new Date(now.getTime() + 60_000)),
      now,
    ),
    "invalid",
  );
  assert.equal(
    createUrlTokens("the-new-secret-of-at-least-32-bytes-012345").check(
      "/media/local/a.jpg",
      token,
      now,
    ),
    "invalid",
  );

  assert.equal(rawPath("http://h/media/local/../x?token=1"), "/media/local/../x");
  assert.equal(rawPath("http://h:8000/a/%2e%2e/b"), "/a/%2e%2e/b");
});
