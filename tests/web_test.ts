/**
 * The annotator's page as HTTP (routes/web.ts): what `/` and `/app/…` answer, the page's
 * security headers, and that its Content-Security-Policy lets through exactly the hosts the media
 * signers hand out. The page at work in a browser: tests/annotator_page_test.ts.
 */
import assert from "node:assert/strict";
import { createMedia, type MediaAnswer } from "../lib/media/index.ts";
import { createTestApp, testConfig, withApp } from "./harness.ts";

/** The directives of a Content-Security-Policy, by name. */
function directives(policy: string): Map<string, string[]> {
  return new Map(policy.split(";").map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k, v]));
}

/** Whether a CSP source expression (`'self'`, an origin, `scheme://*.host`) allows `url`. */
function allows(sources: string[], url: string, self: string): boolean {
  const u = new URL(url);
  return sources.some((s) => {
    if (s === "'self'") return u.origin === self;
    const m = /^(https?):\/\/(\*\.)?([^/:]+)(:\d+)?$/.exec(s);
    if (!m || `${m[1]}:` !== u.protocol || (m[4] ?? "") !== (u.port ? `:${u.port}` : "")) {
      return false;
    }
    return m[2] ? u.hostname.endsWith(`.${m[3]}`) : u.hostname === m[3];
  });
}

async function url(answer: MediaAnswer | Promise<MediaAnswer>): Promise<string> {
  const a = await answer;
  if ("unavailable" in a) throw new Error(a.unavailable);
  return a.url;
}

withApp("GET / is the annotator's page, locked down, with a link to the spec page", async (h) => {
  const res = await h.app.request("/");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
  assert.equal(res.headers.get("x-frame-options"), "DENY");
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  assert.equal(res.headers.get("referrer-policy"), "no-referrer");
  const csp = directives(res.headers.get("content-security-policy")!);
  assert.deepEqual(Object.fromEntries(csp), {
    "default-src": ["'none'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'"],
    "connect-src": ["'self'"],
    "base-uri": ["'none'"],
    "form-action": ["'none'"],
    "frame-ancestors": ["'none'"],
  });
  const html = await res.text();
  assert.match(html, /<a href="\/api\/spec\.html">/);
  // Nothing inline for the policy to refuse: scripts and styles are files.
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/);
  assert.doesNotMatch(html, /<style|\sstyle=/);
  for (const [, path] of html.matchAll(/(?:src|href)="(\/app\/[^"]+)"/g)) {
    const asset = await h.app.request(path);
    assert.equal(asset.status, 200, path);
    assert.equal(asset.headers.get("x-content-type-options"), "nosniff", path);
  }
  assert.equal((await h.app.request("/api/spec.html")).status, 200);
});

withApp(
  "the page's files are served with their types and ETags; unknown ones are 404",
  async (h) => {
    const types: Record<string, string> = {
      "/": "text/html; charset=utf-8",
      "/app/app.js": "text/javascript; charset=utf-8",
      "/app/api.js": "text/javascript; charset=utf-8",
      "/app/editor.js": "text/javascript; charset=utf-8",
      "/app/style.css": "text/css; charset=utf-8",
      "/app/icon.svg": "image/svg+xml",
      "/app/vendor/annotorious.js": "text/javascript; charset=utf-8",
      "/app/vendor/annotorious.css": "text/css; charset=utf-8",
    };
    for (const [path, type] of Object.entries(types)) {
      const res = await h.app.request(path);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers.get("content-type"), type, path);
      assert.equal(res.headers.get("cache-control"), "no-cache", path);
      const etag = res.headers.get("etag");
      assert.match(etag ?? "", /^"[0-9a-f]{24}"$/, path);
      await res.body?.cancel();
      const again = await h.app.request(path, { headers: { "if-none-match": etag! } });
      assert.equal(again.status, 304, path);
    }
    // What a bundler would do for production, done as it is served: a browser has no `process`.
    const lib = await (await h.app.request("/app/vendor/annotorious.js")).text();
    assert.doesNotMatch(lib, /\bprocess\.env/);
    assert.doesNotMatch(lib, /sourceMappingURL/);
    assert.match(lib, /createImageAnnotator/);
    for (const path of ["/app/nope.js", "/app/vendor/", "/app/../deno.json", "/app/constructor"]) {
      const res = await h.app.request(path);
      assert.equal(res.status, 404, path);
      assert.equal((await res.json()).error.code, "not_found", path);
    }
  },
);

Deno.test("the page's img-src allows the hosts the media signers hand out, and no more", async () => {
  const until = new Date(Date.now() + 3600_000);
  const keys = { AWS_ACCESS_KEY_ID: "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY: "secret" };
  const cases: { vars: Record<string, string>; uris: string[]; refused: string[] }[] = [
    {
      vars: { AWS_REGION: "eu-west-1", ...keys },
      uris: ["s3://pics/a.jpg", "s3://a.b.c/k.png"],
      refused: ["https://pics.s3.us-east-1.amazonaws.com/a.jpg", "https://evil.example/x.png"],
    },
    {
      vars: { AWS_ENDPOINT_URL_S3: "http://localhost:9000", S3_FORCE_PATH_STYLE: "true", ...keys },
      uris: ["s3://pics/x.png"],
      refused: ["http://pics.localhost:9000/x.png"],
    },
    {
      vars: { AWS_ENDPOINT_URL_S3: "https://minio.example.com", ...keys },
      uris: ["s3://pics/x.png"],
      refused: ["https://minio.example.org/x.png"],
    },
    {
      vars: { GCS_HMAC_ACCESS_KEY_ID: "GOOG1", GCS_HMAC_SECRET: "secret" },
      uris: ["gs://pics/x.png"],
      refused: ["https://pics.storage.example.com/x.png"],
    },
    {
      vars: { PUBLIC_URL: "https://annotate.example.com", MEDIA_LOCAL_ROOT: "/srv/images" },
      uris: ["file:///srv/images/a.png"],
      refused: ["https://other.example.com/media/local/a.png"],
    },
    {
      vars: { MEDIA_ORIGINS: "https://cdn.example.com,http://photos.example.org:8080" },
      uris: ["https://cdn.example.com/a.png", "http://photos.example.org:8080/b.jpg"],
      refused: ["https://cdn.example.org/a.png", "http://photos.example.org/b.jpg"],
    },
  ];
  const self = "https://page.example.net";
  for (const { vars, uris, refused } of cases) {
    const config = testConfig(vars);
    const h = await createTestApp({ config: vars });
    try {
      const res = await h.app.request("/");
      await res.body?.cancel();
      const imgSrc = directives(res.headers.get("content-security-policy")!).get("img-src")!;
      const media = createMedia(config);
      for (const uri of uris) {
        // The origin operations/media.ts publicOrigin gives for file:// URLs.
        const href = await url(media.link(uri, until, config.media.publicUrl ?? self));
        assert.ok(allows(imgSrc, href, self), `${href} refused by img-src ${imgSrc.join(" ")}`);
      }
      for (const href of refused) {
        assert.ok(!allows(imgSrc, href, self), `${href} allowed by img-src ${imgSrc.join(" ")}`);
      }
    } finally {
      await h.close();
    }
  }
});
