/**
 * The OpenAPI document and the interactive spec page. The page's assets come from the npm
 * package swagger-ui-dist and are served by this server, so it renders without internet access.
 */
import getAbsoluteFSPath from "swagger-ui-dist/absolute-path.js";
import type { Router } from "../lib/http/router.ts";

export const SPEC_JSON_PATH = "/api/openapi.json";
export const SPEC_PAGE_PATH = "/api/spec.html";
const ASSET_PREFIX = "/api/spec-assets/";

const ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
};

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Image annotation server — API</title>
  <link rel="stylesheet" href="${ASSET_PREFIX}swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="${ASSET_PREFIX}swagger-ui-bundle.js"></script>
  <script src="${ASSET_PREFIX}swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "${SPEC_JSON_PATH}",
      dom_id: "#swagger-ui",
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout",
      persistAuthorization: true,
      displayOperationId: true,
      tryItOutEnabled: true,
      // Off: on any host but localhost Swagger UI would otherwise load a badge from
      // validator.swagger.io, sending it this document's URL (and needing the internet).
      validatorUrl: null,
    });
  </script>
</body>
</html>`;

const cache = new Map<string, Promise<Uint8Array>>();

function asset(name: string): Promise<Uint8Array> {
  let bytes = cache.get(name);
  if (!bytes) {
    bytes = Deno.readFile(`${getAbsoluteFSPath()}/${name}`);
    cache.set(name, bytes);
  }
  return bytes;
}

/**
 * Adds the spec page and its assets to `app` (the document itself is added by createApp); `/` is
 * the annotator's page (routes/web.ts), which links here.
 */
export function mountSpecPage(app: Router): void {
  app.get(SPEC_PAGE_PATH, (c) => c.html(PAGE));
  app.get(`${ASSET_PREFIX}:name`, async (c) => {
    const name = c.req.param("name");
    const type = ASSETS[name];
    if (!type) return c.notFound();
    return c.body(await asset(name) as Uint8Array<ArrayBuffer>, 200, {
      "content-type": type,
      "cache-control": "public, max-age=86400",
    });
  });
}
