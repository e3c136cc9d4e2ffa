/**
 * Media over HTTP: a claim's `media` for file:// images served by this server under
 * MEDIA_LOCAL_ROOT (bytes, ranges, types, caching), paths that escape the root, expired and
 * altered tokens, getImageMedia's redirect (bearer or URL token), renewClaim's fresh media,
 * listings with `media=true`, schemes with nothing configured, and CORS. S3 end to end is in
 * tests/media_s3_test.ts, signatures against published vectors in tests/media_signing_test.ts.
 */
import assert from "node:assert/strict";
import { createUrlTokens } from "../lib/auth/url_tokens.ts";
import { ApiError } from "../lib/http/errors.ts";
import { localSegments, localUrlPath } from "../lib/media/local.ts";
import {
  assertError,
  createTestApp,
  setClaimExpiry,
  TEST_JWT_SECRET,
  type TestApp,
  withApp,
} from "./harness.ts";

const encoder = new TextEncoder();
const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3, 4, 5, 6, 7]);

/** A root with pets/cat 1.png and b.jpg, and beside it (outside the root) a FIFO and a file. */
async function mediaRoot(): Promise<{ root: string; outside: string; close(): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "media-test-" });
  const root = `${dir}/root`;
  await Deno.mkdir(`${root}/pets`, { recursive: true });
  await Deno.writeFile(`${root}/pets/cat 1.png`, PNG);
  await Deno.writeFile(`${root}/b.jpg`, encoder.encode("jpeg bytes"));
  await Deno.mkdir(`${dir}/outside`);
  await Deno.writeTextFile(`${dir}/outside/secret.txt`, "secret");
  // Opening a FIFO for reading blocks until a writer comes: a server that opened one of these
  // paths would hang, and the test with it.
  const mkfifo = await new Deno.Command("mkfifo", { args: [`${dir}/outside/fifo`] }).output();
  assert.ok(mkfifo.success);
  await Deno.symlink(`${dir}/outside/fifo`, `${root}/pets/link-out`);
  await Deno.symlink(`${dir}/outside/secret.txt`, `${root}/pets/secret-link.png`);
  return {
    root,
    outside: `${dir}/outside`,
    close: () => Deno.remove(dir, { recursive: true }),
  };
}

let seq = 0;

/** A dataset with these image URIs (in order); returns their ids. */
async function dataset(h: TestApp, uris: string[]): Promise<{ id: string; images: string[] }> {
  const ds = await h.req("POST", "/api/v1/datasets", {
    name: `media-${++seq}`,
    labels: ["cat"],
    access: "open",
  });
  assert.equal(ds.status, 201);
  const reg = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
    images: uris.map((uri, i) => ({ uri, external_id: `m-${i}`, priority: uris.length - i })),
  });
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  return { id: ds.body.id, images: reg.body.images.map((i: { id: string }) => i.id) };
}

/** A request to the app by absolute URL, with no header unless given. */
async function get(h: TestApp, url: string, headers: Record<string, string> = {}) {
  const res = await h.app.request(url, { headers });
  const bytes = new Uint8Array(await res.arrayBuffer());
  const text = new TextDecoder().decode(bytes);
  const json = res.headers.get("content-type")?.includes("application/json")
    ? JSON.parse(text)
    : undefined;
  return { status: res.status, headers: res.headers, bytes, body: json };
}

const fileUri = (root: string, rel: string) =>
  `file://${root}/${rel.split("/").map(encodeURIComponent).join("/")}`;

Deno.test("a claim of a file:// image carries a URL that serves its bytes for the lease", async () => {
  const fs = await mediaRoot();
  const h = await createTestApp({ config: { MEDIA_LOCAL_ROOT: fs.root } });
  try {
    const ds = await dataset(h, [fileUri(fs.root, "pets/cat 1.png"), fileUri(fs.root, "b.jpg")]);
    const annotator = await h.user("annotator");
    const claim = await annotator.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    assert.equal(claim.status, 201);
    const { media, media_unavailable } = claim.body;
    assert.equal(media_unavailable, undefined);
    assert.match(media.url, /^http:\/\/localhost\/media\/local\/pets\/cat%201\.png\?token=/);
    // Valid until the lease ends plus the 10-minute margin.
    const lease = Date.parse(claim.body.claim.expires_at);
    const until = Date.parse(media.expires_at);
    assert.ok(
      until >= lease + 10 * 60_000 - 1000 && until <= lease + 10 * 60_000,
      media.expires_at,
    );

    const whole = await get(h, media.url);
    assert.equal(whole.status, 200);
    assert.deepEqual(whole.bytes, PNG);
    assert.equal(whole.headers.get("content-type"), "image/png");
    assert.equal(whole.headers.get("content-length"), String(PNG.length));
    assert.match(whole.headers.get("cache-control")!, /^private, max-age=\d+$/);
    assert.equal(whole.headers.get("accept-ranges"), "bytes");
    const etag = whole.headers.get("etag")!;
    assert.match(etag, /^"[0-9a-f]+-[0-9a-f]+"$/);
    // A Response the handler built itself carries the request id too.
    assert.match(whole.headers.get("x-request-id")!, /^[0-9a-f-]{36}$/);

    const part = await get(h, media.url, { range: "bytes=2-5" });
    assert.equal(part.status, 206);
    assert.deepEqual(part.bytes, PNG.slice(2, 6));
    assert.equal(part.headers.get("content-range"), `bytes 2-5/${PNG.length}`);
    const tail = await get(h, media.url, { range: "bytes=-3" });
    assert.equal(tail.status, 206);
    assert.deepEqual(tail.bytes, PNG.slice(-3));
    const open = await get(h, media.url, { range: "bytes=10-" });
    assert.deepEqual(open.bytes, PNG.slice(10));
    // A range whose If-Range names another version: the whole, current file.
    const stale = await get(h, media.url, { range: "bytes=2-5", "if-range": '"old"' });
    assert.equal(stale.status, 200);
    assert.deepEqual(stale.bytes, PNG);

    const beyond = await get(h, media.url, { range: "bytes=100-200" });
    assertError(beyond, 416, "range_not_satisfiable");
    assert.equal(beyond.headers.get("content-range"), `bytes */${PNG.length}`);

    const cached = await get(h, media.url, { "if-none-match": etag });
    assert.equal(cached.status, 304);
    assert.equal(cached.bytes.length, 0);

    const head = await h.app.request(media.url, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(PNG.length));
    assert.equal((await head.arrayBuffer()).byteLength, 0);
  } finally {
    await h.close();
    await fs.close();
  }
});

// file:// paths that leave MEDIA_LOCAL_ROOT are 404, and nothing outside is opened.

interface Escape {
  h: TestApp;
  fs: Awaited<ReturnType<typeof mediaRoot>>;
  /** `path` with a token the server would have made: a refusal is the path's, not the token's. */
  signed(path: string): string;
  /** GET of that request target as sent, through a real listener (no URL parser normalises it). */
  raw(target: string): Promise<{ status: number; body: string }>;
}

/** A test on an app serving its own media root, behind a real listener too. */
function withEscape(name: string, fn: (e: Escape) => Promise<void>): void {
  Deno.test(name, async () => {
    const fs = await mediaRoot();
    const h = await createTestApp({ config: { MEDIA_LOCAL_ROOT: fs.root } });
    const tokens = createUrlTokens(TEST_JWT_SECRET);
    const signed = (path: string) =>
      `${path}?token=${tokens.sign(path, new Date(Date.now() + 600_000))}`;
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, h.app.fetch);
    const raw = async (target: string) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
      try {
        await conn.write(
          encoder.encode(`GET ${target} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n`),
        );
        let text = "";
        const buffer = new Uint8Array(65536);
        while (true) {
          const n = await conn.read(buffer);
          if (n === null) break;
          text += new TextDecoder().decode(buffer.subarray(0, n));
        }
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
        return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
      } finally {
        conn.close();
      }
    };
    try {
      await fn({ h, fs, signed, raw });
    } finally {
      await server.shutdown();
      await h.close();
      await fs.close();
    }
  });
}

withEscape(
  "media escapes: dot segments, encoded or not, and encoded slashes",
  async ({ signed, raw }) => {
    for (
      const target of [
        "/media/local/../outside/fifo",
        "/media/local/pets/../../outside/fifo",
        "/media/local/%2e%2e/outside/fifo",
        "/media/local/%2E%2E/outside/secret.txt",
        "/media/local/..%2Foutside%2Ffifo",
        "/media/local/pets%2F..%2F..%2Foutside%2Fsecret.txt",
        "/media/local/pets/..%5C..%5Coutside%5Cfifo",
        "/media/local//etc/hostname",
        "/media/local/%2Fetc%2Fhostname",
        "/media/local/pets/%00.png",
      ]
    ) {
      const res = await raw(signed(target));
      assert.equal(res.status, 404, `${target}: ${res.body}`);
      assert.match(res.body, /"error":\{"code":"not_found"/, target);
      assert.doesNotMatch(res.body, /secret/, target);
    }
  },
);

withEscape("media escapes: a symlink out of the root", async ({ h, signed }) => {
  for (const target of ["/media/local/pets/link-out", "/media/local/pets/secret-link.png"]) {
    const res = await get(h, `http://localhost${signed(target)}`);
    assertError(res, 404, "not_found");
  }
});

withEscape(
  "media escapes: an absolute path outside the root is never given a URL",
  async ({ h, fs }) => {
    const ds = await dataset(h, [`file://${fs.outside}/secret.txt`, "file:///etc/hostname"]);
    const annotator = await h.user("annotator");
    const claim = await annotator.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    assert.equal(claim.status, 201);
    assert.equal(claim.body.media, null);
    assert.match(claim.body.media_unavailable, /is not under MEDIA_LOCAL_ROOT/);
    const listed = await h.req("GET", `/api/v1/datasets/${ds.id}/images?media=true`);
    for (const item of listed.body.items) {
      assert.equal(item.media, null);
      assert.match(item.media_unavailable, /is not under MEDIA_LOCAL_ROOT/);
    }
  },
);

withEscape(
  "media escapes: a file that does not exist, and a directory",
  async ({ h, signed }) => {
    for (const target of ["/media/local/pets/none.png", "/media/local/pets"]) {
      assertError(await get(h, `http://localhost${signed(target)}`), 404, "not_found");
    }
  },
);

Deno.test("an expired or altered media token is 401 or 403 with the error shape", async () => {
  const fs = await mediaRoot();
  const h = await createTestApp({ config: { MEDIA_LOCAL_ROOT: fs.root } });
  const tokens = createUrlTokens(TEST_JWT_SECRET);
  try {
    const ds = await dataset(h, [fileUri(fs.root, "b.jpg")]);
    const path = "/media/local/b.jpg";
    const url = (token: string) => `http://localhost${path}?token=${token}`;

    const past = tokens.sign(path, new Date(Date.now() - 1000));
    assertError(await get(h, url(past)), 401, "token_expired");
    const good = tokens.sign(path, new Date(Date.now() + 60_000));
    assert.equal((await get(h, url(good))).status, 200);
    // One character of the MAC changed; the expiry pushed later; a token for another path.
    // (The MAC's first character: the last one's two low bits are base64url padding, which
    // decoding drops, so changing only them changed nothing one time in sixteen.)
    const mac = good.indexOf(".") + 1;
    const flipped = good.slice(0, mac) + (good[mac] === "A" ? "B" : "A") + good.slice(mac + 1);
    assertError(await get(h, url(flipped)), 403, "invalid_token");
    const later = `${Number(good.split(".")[0]) + 3600}.${good.split(".")[1]}`;
    assertError(await get(h, url(later)), 403, "invalid_token");
    const other = tokens.sign("/media/local/pets/cat%201.png", new Date(Date.now() + 60_000));
    assertError(await get(h, url(other)), 403, "invalid_token");
    assertError(await get(h, `http://localhost${path}`), 403, "invalid_token");
    // A token signed with another secret.
    const foreign = createUrlTokens("another-secret-another-secret-0123456789")
      .sign(path, new Date(Date.now() + 60_000));
    assertError(await get(h, url(foreign)), 403, "invalid_token");

    // getImageMedia: the same rules for its token.
    const mediaPath = `/api/v1/images/${ds.images[0]}/media`;
    const gone = tokens.sign(mediaPath, new Date(Date.now() - 1000));
    assertError(await get(h, `http://localhost${mediaPath}?token=${gone}`), 401, "token_expired");
    const wrong = tokens.sign(`/api/v1/images/999/media`, new Date(Date.now() + 60_000));
    assertError(await get(h, `http://localhost${mediaPath}?token=${wrong}`), 403, "invalid_token");
    assertError(await get(h, `http://localhost${mediaPath}?token=junk`), 403, "invalid_token");
    assertError(await get(h, `http://localhost${mediaPath}`), 401, "unauthorized");
  } finally {
    await h.close();
    await fs.close();
  }
});

Deno.test("getImageMedia redirects to the bytes, with a bearer token or a listing's URL", async () => {
  const fs = await mediaRoot();
  const h = await createTestApp({ config: { MEDIA_LOCAL_ROOT: fs.root } });
  try {
    const ds = await dataset(h, [
      fileUri(fs.root, "b.jpg"),
      "https://images.example.com/a.jpg",
      "s3://bucket/c.jpg",
    ]);
    const [local, web, s3] = ds.images;
    for (const role of ["admin", "reviewer", "annotator", "machine"] as const) {
      const u = await h.user(role);
      const res = await u.req("GET", `/api/v1/images/${local}/media`);
      assert.equal(res.status, 302, role);
      assert.equal(res.headers.get("cache-control"), "private, no-store");
      const target = res.headers.get("location")!;
      assert.match(target, /^http:\/\/localhost\/media\/local\/b\.jpg\?token=/);
      assert.equal(new TextDecoder().decode((await get(h, target)).bytes), "jpeg bytes");
    }
    const passed = await h.req("GET", `/api/v1/images/${web}/media`);
    assert.equal(passed.status, 302);
    assert.equal(passed.headers.get("location"), "https://images.example.com/a.jpg");

    // A listing's URLs: getImageMedia with a token, loadable with no header.
    const listed = await h.req("GET", `/api/v1/datasets/${ds.id}/images?media=true`);
    assert.equal(listed.status, 200);
    const [first, second, third] = listed.body.items;
    assert.match(first.media.url, new RegExp(`/api/v1/images/${local}/media\\?token=`));
    const hour = Date.parse(first.media.expires_at) - Date.now();
    assert.ok(hour > 3590_000 && hour <= 3600_000, first.media.expires_at);
    assert.equal(second.media.url, "https://images.example.com/a.jpg");
    assert.equal(third.media, null);
    assert.match(third.media_unavailable, /^no credentials for s3:\/\//);
    const redirect = await get(h, first.media.url);
    assert.equal(redirect.status, 302);
    assert.equal(
      new TextDecoder().decode((await get(h, redirect.headers.get("location")!)).bytes),
      "jpeg bytes",
    );
    // The token opens that image only.
    const swapped = first.media.url.replace(`/images/${local}/`, `/images/${web}/`);
    assertError(await get(h, swapped), 403, "invalid_token");

    const one = await h.req("GET", `/api/v1/images/${local}?media=true`);
    assert.match(one.body.media.url, /\/media\?token=/);
    const plain = await h.req("GET", `/api/v1/images/${local}`);
    assert.ok(!("media" in plain.body));
    const unlisted = await h.req("GET", `/api/v1/datasets/${ds.id}/images`);
    assert.ok(!("media" in unlisted.body.items[0]));

    assertError(await h.req("GET", `/api/v1/images/999999/media`), 404, "not_found");
    const none = await h.req("GET", `/api/v1/images/${s3}/media`);
    assertError(none, 404, "media_unavailable");
    assert.match(none.body.error.message, /no credentials for s3:\/\//);
  } finally {
    await h.close();
    await fs.close();
  }
});

Deno.test("renewClaim answers the claim with fresh media for the new lease", async () => {
  const fs = await mediaRoot();
  const h = await createTestApp({ config: { MEDIA_LOCAL_ROOT: fs.root } });
  try {
    const ds = await dataset(h, [fileUri(fs.root, "b.jpg")]);
    const annotator = await h.user("annotator");
    const first = await annotator.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    // The lease as if granted 2 s ago (media URLs expire in whole seconds), instead of waiting:
    // claiming again answers the held claim with media for that lease.
    const leftMs = Date.parse(first.body.claim.expires_at) - Date.now();
    assert.equal(await setClaimExpiry(h.db, first.body.claim.id, leftMs - 2000), 1);
    const claim = await annotator.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    assert.equal(claim.status, 200);
    assert.equal(claim.body.claim.id, first.body.claim.id);
    const renewed = await annotator.req("POST", `/api/v1/claims/${claim.body.claim.id}/renew`);
    assert.equal(renewed.status, 200);
    for (const key of ["id", "image_id", "dataset_id", "user_id", "expires_at"]) {
      assert.ok(key in renewed.body, key);
    }
    assert.ok(Date.parse(renewed.body.expires_at) > Date.parse(claim.body.claim.expires_at));
    assert.notEqual(renewed.body.media.url, claim.body.media.url);
    assert.ok(Date.parse(renewed.body.media.expires_at) > Date.parse(claim.body.media.expires_at));
    assert.equal(
      new TextDecoder().decode((await get(h, renewed.body.media.url)).bytes),
      "jpeg bytes",
    );
  } finally {
    await h.close();
    await fs.close();
  }
});

withApp(
  "a scheme with nothing configured gives media null and says why, never a 500",
  async (h) => {
    const uris = [
      "s3://bucket/a.jpg",
      "gs://bucket/a.jpg",
      "file:///srv/images/a.jpg",
      "s3://bucket-without-key",
      "http://images.example.com/a.jpg",
    ];
    const ds = await dataset(h, uris);
    const expected = [
      /^no credentials for s3:\/\/: set AWS_REGION/,
      /^no credentials for gs:\/\/: set GCS_HMAC_ACCESS_KEY_ID/,
      /^file:\/\/ is not served: MEDIA_LOCAL_ROOT is not set$/,
      /names no object/,
      null,
    ];
    const annotator = await h.user("annotator");
    for (const [i, why] of expected.entries()) {
      const claim = await annotator.req("POST", `/api/v1/datasets/${ds.id}/claims`);
      assert.equal(claim.status, 201, JSON.stringify(claim.body));
      assert.equal(claim.body.image.uri, uris[i]);
      if (why) {
        assert.equal(claim.body.media, null);
        assert.match(claim.body.media_unavailable, why);
      } else {
        assert.equal(claim.body.media.url, uris[i]);
        assert.ok(!("media_unavailable" in claim.body));
      }
      const release = await annotator.req("DELETE", `/api/v1/claims/${claim.body.claim.id}`);
      assert.equal(release.status, 204);
      // Released images come back first: annotate nothing, but skip it by deleting it.
      assert.equal((await h.req("DELETE", `/api/v1/images/${ds.images[i]}`)).status, 204);
    }
    // With no root, /media/local serves nothing.
    assertError(await get(h, "http://localhost/media/local/a.jpg?token=1.x"), 404, "not_found");
  },
);

Deno.test("CORS: listed origins get preflights without authentication; others get nothing", async () => {
  const h = await createTestApp({
    config: { CORS_ORIGINS: "https://app.example.com, http://localhost:5173" },
  });
  try {
    const preflight = (origin: string) =>
      h.app.request("/api/v1/datasets", {
        method: "OPTIONS",
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "authorization, content-type",
        },
      });
    const ok = await preflight("https://app.example.com");
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get("access-control-allow-origin"), "https://app.example.com");
    assert.match(ok.headers.get("access-control-allow-headers")!, /Authorization/);
    assert.match(ok.headers.get("access-control-allow-headers")!, /Content-Type/);
    assert.match(ok.headers.get("access-control-allow-methods")!, /POST/);

    const other = await preflight("https://evil.example.com");
    assert.equal(other.headers.get("access-control-allow-origin"), null);
    assert.equal(other.headers.get("access-control-allow-methods"), null);
    const body = await other.json();
    assert.ok(body.error, "a JSON error, not a preflight answer");

    const listed = await h.app.request("/api/v1/me", {
      headers: { origin: "http://localhost:5173", authorization: `Bearer ${h.admin.token}` },
    });
    assert.equal(listed.status, 200);
    assert.equal(listed.headers.get("access-control-allow-origin"), "http://localhost:5173");
    const refused = await h.app.request("/api/v1/me", {
      headers: { origin: "http://localhost:5173" },
    });
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get("access-control-allow-origin"), "http://localhost:5173");
    const unlisted = await h.app.request("/api/v1/me", {
      headers: { origin: "https://evil.example.com", authorization: `Bearer ${h.admin.token}` },
    });
    assert.equal(unlisted.headers.get("access-control-allow-origin"), null);
  } finally {
    await h.close();
  }

  // Unset (the default): no CORS header for anyone.
  const plain = await createTestApp();
  try {
    const res = await plain.app.request("/api/v1/me", {
      headers: { origin: "https://app.example.com", authorization: `Bearer ${plain.admin.token}` },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("access-control-allow-origin"), null);
  } finally {
    await plain.close();
  }
});

Deno.test("the lexical check alone refuses every escape, before the file system is asked", () => {
  for (
    const path of [
      "..",
      "pets/../..",
      "%2e%2e/x",
      "%2E%2e/x",
      "..%2Fx",
      "a%2Fb",
      "a%5Cb",
      "a/%00",
      "a//b",
      "/etc",
      "./a",
      "%zz",
    ]
  ) {
    assert.throws(
      () => localSegments(path),
      (e) => e instanceof ApiError && e.status === 404,
      path,
    );
  }
  assert.deepEqual(localSegments("pets/cat%201.png"), ["pets", "cat 1.png"]);

  const root = "/srv/media";
  assert.deepEqual(localUrlPath("file:///srv/media/pets/cat%201.png", root), {
    path: "pets/cat%201.png",
  });
  assert.deepEqual(localUrlPath("file://localhost/srv/media/a.jpg", root), { path: "a.jpg" });
  for (
    const uri of [
      "file:///srv/media/../etc/passwd",
      "file:///srv/media/%2e%2e/etc/passwd",
      "file:///srv/media/a%2F..%2F..%2Fetc",
      "file:///srv/mediaX/a.jpg",
      "file:///srv/media",
      "file:///etc/passwd",
    ]
  ) {
    const got = localUrlPath(uri, root);
    assert.ok("unavailable" in got && /not under MEDIA_LOCAL_ROOT/.test(got.unavailable), uri);
  }
  assert.ok("unavailable" in localUrlPath("file://otherhost/srv/media/a.jpg", root));
});
