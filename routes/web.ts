/**
 * The annotator's page at `/`: plain HTML, CSS and ES modules from web/, and Annotorious's ES
 * build and stylesheet from node_modules, served by this server with no build step and nothing
 * fetched from elsewhere. Every file is imported as text, so it is part of the server's module
 * graph: the Docker image installs the package and `deno task compile` embeds it all, with no
 * list to keep in step.
 *
 * The page is locked down with a strict Content-Security-Policy: scripts and styles from this
 * origin only (no inline ones: the page has none, and its code writes no `style` attribute),
 * images from this origin and the configured media origins only (lib/media/origins.ts), API
 * calls to this origin only, never framed (also `X-Frame-Options: DENY`).
 */
import annotoriousCss from "@annotorious/annotorious/annotorious.css" with { type: "text" };
import annotoriousJs from "@annotorious/annotorious" with { type: "text" };
import { Hono } from "hono";
import { mediaOrigins } from "../lib/media/origins.ts";
import type { Config } from "../lib/runtime/config.ts";
import apiJs from "../web/api.js" with { type: "text" };
import appJs from "../web/app.js" with { type: "text" };
import editorJs from "../web/editor.js" with { type: "text" };
import iconSvg from "../web/icon.svg" with { type: "text" };
import indexHtml from "../web/index.html" with { type: "text" };
import styleCss from "../web/style.css" with { type: "text" };

export const PAGE_PATH = "/";
const JS = "text/javascript; charset=utf-8";
const CSS = "text/css; charset=utf-8";

/** The files under /app/, by name: their type and text. */
const ASSETS: Record<string, { type: string; text: string }> = {
  "app.js": { type: JS, text: appJs },
  "api.js": { type: JS, text: apiJs },
  "editor.js": { type: JS, text: editorJs },
  "style.css": { type: CSS, text: styleCss },
  "icon.svg": { type: "image/svg+xml", text: iconSvg },
  // The ES build leaves one `process.env.NODE_ENV` (from nanostores) for a bundler to replace,
  // as bundlers do for production; browsers have no `process`. The package's source map is not
  // shipped: its comment would only send devtools to a 404.
  "vendor/annotorious.js": {
    type: JS,
    text: annotoriousJs.replaceAll("process.env.NODE_ENV", '"production"')
      .replace(/\n\/\/# sourceMappingURL=\S+\s*$/, "\n"),
  },
  "vendor/annotorious.css": { type: CSS, text: annotoriousCss },
};

/** The page's Content-Security-Policy, with the media origins of `config`. */
export function pagePolicy(config: Config): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    `img-src ${["'self'", ...mediaOrigins(config.media)].join(" ")}`,
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/** Headers on the page and its files: nothing sniffed, framed or sent as a referrer. */
const COMMON = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  // Revalidated on every load (the ETag makes that a 304): a deploy shows at once.
  "cache-control": "no-cache",
};

const etags = new Map<string, Promise<string>>();

/** A strong ETag of `text`, computed once per file. */
function etag(name: string, text: string): Promise<string> {
  let tag = etags.get(name);
  if (!tag) {
    tag = crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)).then((d) =>
      `"${
        Array.from(new Uint8Array(d).slice(0, 12), (b) => b.toString(16).padStart(2, "0")).join(
          "",
        )
      }"`
    );
    etags.set(name, tag);
  }
  return tag;
}

/** GET / (the page) and GET /app/<file> (its scripts and styles). */
export function webRouter(config: Config) {
  const policy = pagePolicy(config);
  const page = {
    ...COMMON,
    "content-type": "text/html; charset=utf-8",
    "content-security-policy": policy,
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
  };
  return new Hono()
    .get(PAGE_PATH, async (c) => {
      const tag = await etag("index.html", indexHtml);
      if (c.req.header("if-none-match") === tag) return c.body(null, 304, { ...page, etag: tag });
      return c.body(indexHtml, 200, { ...page, etag: tag });
    })
    .get("/app/:path{.+}", async (c) => {
      const name = c.req.param("path");
      const asset = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
      if (!asset) return c.notFound();
      const tag = await etag(name, asset.text);
      const headers = { ...COMMON, "content-type": asset.type, etag: tag };
      if (c.req.header("if-none-match") === tag) return c.body(null, 304, headers);
      return c.body(asset.text, 200, headers);
    });
}
