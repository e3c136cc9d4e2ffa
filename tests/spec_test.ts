import assert from "node:assert/strict";
import { createApp } from "../lib/http/app.ts";
import { silentLogger } from "../lib/runtime/log.ts";
import { connect } from "../lib/db/pool.ts";
import { createTestDb, testConfig, withApp } from "./harness.ts";
import { chromiumInstalled, launchChromium } from "./browser.ts";

/** Resolved to 127.0.0.1 inside the browser only. */
const PUBLIC_HOST = "annotations.example.test";
const HTTP_METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/** The operations in the foundation; later features add more, which is fine. */
const EXPECTED_OPERATIONS = [
  "getHealth",
  "getReadiness",
  "createDataset",
  "listDatasets",
  "getDataset",
  "updateDataset",
  "registerImages",
  "listImages",
  "getImage",
  "updateImage",
  "deleteImage",
  "setPriorities",
];

interface Operation {
  operationId?: string;
  requestBody?: { required?: boolean; content?: Record<string, unknown> };
  responses: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }>;
}

interface Spec {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
}

function operations(spec: Spec): { path: string; method: string; op: Operation }[] {
  return Object.entries(spec.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => HTTP_METHODS.includes(method))
      .map(([method, op]) => ({ path, method, op }))
  );
}

// The OpenAPI document.

/**
 * A test of the document an app serves at /api/openapi.json (asked without credentials). The
 * document needs no database: the app's pool points nowhere and never connects.
 */
function withSpec(
  name: string,
  fn: (t: { spec: Spec; ops: ReturnType<typeof operations> }) => void,
): void {
  Deno.test(name, async () => {
    const db = connect("postgres://unused@127.0.0.1:1/unused", {
      max: 1,
      connectTimeoutSeconds: 1,
      statementTimeoutMs: 0,
    });
    try {
      const app = createApp({ db, config: testConfig(), log: silentLogger });
      const res = await app.request("/api/openapi.json");
      assert.equal(res.status, 200, "the document needs no credentials");
      const spec = await res.json() as Spec;
      fn({ spec, ops: operations(spec) });
    } finally {
      await db.end();
    }
  });
}

withSpec("OpenAPI document: is OpenAPI 3.1", ({ spec }) => {
  assert.match(spec.openapi, /^3\.1\.\d+$/);
});

withSpec(
  "OpenAPI document: has every foundation operation, each operationId once",
  ({ ops }) => {
    const ids = ops.map((o) => o.op.operationId);
    for (const id of EXPECTED_OPERATIONS) assert.ok(ids.includes(id), `${id} missing`);
    assert.equal(new Set(ids).size, ids.length, "duplicate operationId");
    assert.ok(ids.every((id) => typeof id === "string" && id.length > 0), "unnamed operation");
  },
);

withSpec(
  "OpenAPI document: every /api/v1 operation documents a 4xx with the Error schema",
  ({ ops }) => {
    const api = ops.filter((o) => o.path.startsWith("/api/v1/"));
    assert.ok(api.length >= 10);
    for (const { path, method, op } of api) {
      const documented = Object.entries(op.responses).filter(([status, r]) =>
        /^4\d\d$/.test(status) &&
        r.content?.["application/json"]?.schema?.$ref === "#/components/schemas/Error"
      );
      assert.ok(documented.length > 0, `${method.toUpperCase()} ${path}: no 4xx with Error`);
    }
  },
);

withSpec(
  "OpenAPI document: every /api/v1 operation documents 503 (timeout, database unavailable)",
  ({ ops }) => {
    const api = ops.filter((o) => o.path.startsWith("/api/v1/"));
    for (const { path, method, op } of api) {
      const r = op.responses["503"];
      assert.ok(r, `${method.toUpperCase()} ${path}: no 503`);
      assert.equal(
        r.content?.["application/json"]?.schema?.$ref,
        "#/components/schemas/Error",
        `${method.toUpperCase()} ${path}: 503 without the Error schema`,
      );
    }
  },
);

withSpec(
  "OpenAPI document: every $ref in a request body names a component the spec defines",
  ({ spec, ops }) => {
    const components = (spec as unknown as { components: { schemas: Record<string, unknown> } })
      .components.schemas;
    const refs = ops.flatMap(({ op }) =>
      Object.values(op.requestBody?.content ?? {}).flatMap((m) => {
        const ref = (m as { schema?: { $ref?: string } }).schema?.$ref;
        return ref ? [ref] : [];
      })
    );
    // registerImages validates its own body, declared by reference (lib/http/openapi.ts jsonBodyRef).
    assert.ok(refs.includes("#/components/schemas/RegisterImages"), JSON.stringify(refs));
    for (const ref of refs) {
      assert.ok(components[ref.replace("#/components/schemas/", "")], `${ref} is not defined`);
    }
    const register = components.RegisterImages as {
      required: string[];
      properties: { images: { items: { $ref: string }; maxItems: number } };
    };
    assert.deepEqual(register.required, ["images"]);
    assert.equal(register.properties.images.items.$ref, "#/components/schemas/NewImage");
    assert.equal(register.properties.images.maxItems, 10_000);
    assert.ok(components.NewImage, "NewImage is defined");
  },
);

withSpec("OpenAPI document: every request body is required JSON", ({ ops }) => {
  const withBody = ops.filter((o) => o.op.requestBody);
  assert.ok(withBody.length >= 6);
  for (const { path, method, op } of withBody) {
    const where = `${method.toUpperCase()} ${path}`;
    assert.equal(op.requestBody!.required, true, `${where}: body not required`);
    assert.ok(op.requestBody!.content?.["application/json"], `${where}: body not JSON`);
  }
});

withSpec("OpenAPI document: names its server (relative) and its licence", ({ spec }) => {
  const doc = spec as unknown as { servers: { url: string }[]; info: { license?: object } };
  assert.deepEqual(doc.servers.map((s) => s.url), ["/"]);
  assert.ok(doc.info.license && "name" in doc.info.license, "info.license.name");
});

withSpec(
  "OpenAPI document: every error answer has examples of its own status's codes",
  ({ spec }) => {
    const examples = errorExamples(spec);
    assert.ok(examples.length > 100, `${examples.length} examples`);
    for (const { where, status, name, value } of examples) {
      const { code, message } = value.error;
      assert.ok(CODES[status]?.includes(code), `${where} ${status} ${name}: code ${code}`);
      assert.equal(typeof message, "string", `${where} ${status} ${name}`);
    }
    // Not one example for all: each status has its own, and 401 and 404 are no 400.
    const byStatus = new Map<string, Set<string>>();
    for (const e of examples) {
      byStatus.set(e.status, (byStatus.get(e.status) ?? new Set()).add(e.value.error.code));
    }
    assert.deepEqual(byStatus.get("404"), new Set(["not_found", "media_unavailable"]));
    assert.ok(!byStatus.get("401")!.has("validation_failed"));
  },
);

withSpec(
  "OpenAPI document: createPredictions declares the 409 of an image deleted meanwhile",
  ({ spec }) => {
    const op = spec.paths["/api/v1/datasets/{datasetId}/predictions"].post;
    assert.ok(op.responses["409"]);
  },
);

/** The codes each error status answers with (docs/api.md#errors). */
const CODES: Record<string, string[]> = {
  400: ["validation_failed", "bad_request", "invalid_value"],
  401: ["unauthorized", "invalid_token", "invalid_api_key", "token_expired"],
  403: [
    "forbidden",
    "claim_not_yours",
    "review_not_yours",
    "annotation_not_yours",
    "invalid_token",
  ],
  404: ["not_found", "media_unavailable"],
  409: [
    "dataset_exists",
    "user_exists",
    "labels_append_only",
    "claim_expired",
    "claim_completed",
    "claim_released",
    "claim_mismatch",
    "review_expired",
    "review_completed",
    "review_released",
    "review_revoked",
    "review_mismatch",
    "own_annotation",
    "annotation_not_current",
    "image_in_review",
    "user_disabled",
    "external_user",
    "cannot_disable_self",
    "conflict",
  ],
  413: ["payload_too_large"],
  415: ["unsupported_media_type"],
  422: ["unknown_label", "out_of_bounds", "invalid_annotation"],
  503: ["busy", "timeout", "unavailable", "not_ready"],
};

interface ErrorExample {
  where: string;
  status: string;
  name: string;
  value: { error: { code: string; message: string; details?: unknown[] } };
}

function errorExamples(spec: Spec): ErrorExample[] {
  return operations(spec).flatMap(({ path, method, op }) =>
    Object.entries(op.responses).filter(([status]) => /^[45]/.test(status)).flatMap(
      ([status, r]) => {
        const media = r.content?.["application/json"] as {
          examples?: Record<string, { value: ErrorExample["value"] }>;
        };
        const where = `${method.toUpperCase()} ${path}`;
        assert.ok(media?.examples, `${where} ${status}: no examples`);
        return Object.entries(media.examples).map(([name, e]) => ({
          where,
          status,
          name,
          value: e.value,
        }));
      },
    )
  );
}

withApp("the error examples are answers the server gives", async (h) => {
  const spec = (await h.anon("GET", "/api/openapi.json")).body as Spec;
  const examples = new Map(errorExamples(spec).map((e) => [e.name, e.value]));
  const annotator = await h.user("annotator");
  const ds = await h.req("POST", "/api/v1/datasets", { name: "examples", labels: ["cat"] });
  await h.req("POST", "/api/v1/datasets", { name: "pets", labels: ["a"] });
  const answers: [string, () => Promise<{ body: unknown }>][] = [
    ["unauthorized", () => h.anon("GET", "/api/v1/me")],
    ["invalid_api_key", () => h.anon("POST", "/api/v1/auth/token", { api_key: "ak_nope" })],
    ["invalid_token_request", () => h.anon("POST", "/api/v1/auth/token", {})],
    ["malformed_json", () => h.req("POST", "/api/v1/datasets", "{")],
    ["invalid_dataset_id", () => h.req("GET", "/api/v1/datasets/abc")],
    ["dataset_not_found", () => h.req("GET", "/api/v1/datasets/42")],
    ["image_not_found", () => h.req("GET", "/api/v1/images/42")],
    ["claim_not_found", () => h.req("POST", "/api/v1/claims/7/renew")],
    ["user_not_found", () => h.req("DELETE", "/api/v1/users/5")],
    ["no_dataset_change", () => h.req("PATCH", `/api/v1/datasets/${ds.body.id}`, {})],
    ["invalid_limit", () => h.req("GET", `/api/v1/datasets/${ds.body.id}/images?limit=5000`)],
    ["invalid_cursor", () => h.req("GET", `/api/v1/datasets/${ds.body.id}/annotations?after=x`)],
    ["invalid_format", () => h.req("GET", `/api/v1/datasets/${ds.body.id}/export?format=xml`)],
    ["forbidden", () => annotator.req("GET", "/api/v1/images/42/annotations")],
    ["cannot_disable_self", () => h.req("DELETE", `/api/v1/users/${h.admin.id}`)],
    ["dataset_exists", () => h.req("POST", "/api/v1/datasets", { name: "pets", labels: ["a"] })],
  ];
  for (const [name, answer] of answers) {
    assert.ok(examples.has(name), `no example named ${name}`);
    assert.deepEqual((await answer()).body, examples.get(name), name);
  }
});

Deno.test({
  name: "the spec page renders offline in a browser",
  // Without a browser this is reported as ignored, never as passed. CI installs chromium.
  ignore: !chromiumInstalled(),
  async fn() {
    const tdb = await createTestDb(2);
    const app = createApp({ db: tdb.db, config: testConfig(), log: silentLogger });
    const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
    const base = `http://127.0.0.1:${server.addr.port}`;
    // A non-loopback name for the same server: Swagger UI behaves differently on localhost
    // (it skips its online validator there), and production is never served from loopback.
    const browser = await launchChromium([`--host-resolver-rules=MAP ${PUBLIC_HOST} 127.0.0.1`]);
    try {
      const spec = await (await fetch(`${base}/api/openapi.json`)).json() as Spec;
      const expected = operations(spec).length;

      const port = server.addr.port;
      for (const origin of [base, `http://${PUBLIC_HOST}:${port}`]) {
        const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
        try {
          const local = new Set(["127.0.0.1", PUBLIC_HOST]);
          const external: string[] = [];
          await context.route("**/*", (route) => {
            const url = new URL(route.request().url());
            if (local.has(url.hostname) || ["data:", "blob:"].includes(url.protocol)) {
              return route.continue();
            }
            external.push(url.href);
            return route.abort();
          });
          const page = await context.newPage();
          const pageErrors: string[] = [];
          page.on("pageerror", (e) => pageErrors.push(String(e)));
          const failed: string[] = [];
          page.on("requestfailed", (r) => failed.push(`${r.url()}: ${r.failure()?.errorText}`));

          const res = await page.goto(`${origin}/api/spec.html`);
          assert.equal(res?.status(), 200);
          // Evaluated in the page (a string: this file is not type-checked against the DOM).
          await page.waitForFunction(
            `document.querySelectorAll(".opblock").length === ${expected}`,
            undefined,
            { timeout: 30_000 },
          );
          const titles = await page.locator(".opblock-summary-operation-id").allTextContents();
          for (const id of EXPECTED_OPERATIONS) assert.ok(titles.includes(id), `${id} missing`);
          assert.equal(await page.locator(".swagger-ui .info .title").count(), 1);
          // The security schemes give the page an Authorize button, whose dialog takes their tokens.
          const authorize = page.locator(".swagger-ui .auth-wrapper button.authorize");
          assert.equal(await authorize.count(), 1, "an Authorize button");
          assert.ok(await authorize.isVisible(), "the Authorize button is visible");
          await authorize.click();
          const dialog = page.locator(".swagger-ui .dialog-ux .modal-ux");
          await dialog.waitFor({ state: "visible", timeout: 10_000 });
          assert.match(await dialog.innerText(), /Bearer/);
          assert.match(await dialog.innerText(), /MetricsToken/);
          assert.match(await dialog.innerText(), /UrlToken/);
          assert.equal(
            await dialog.locator("input[type=text], input[type=password]").count(),
            3,
            "one field for the API token, one for METRICS_TOKEN, one for a URL's token",
          );
          await dialog.locator("button.close-modal").click();
          // Let late requests (badges, fonts) start before judging.
          await page.waitForLoadState("networkidle");

          if (origin === base) {
            await Deno.mkdir(".data", { recursive: true });
            await page.screenshot({ path: ".data/spec.png", fullPage: true });
          }
          assert.deepEqual(external, [], `${origin}: the page tried to reach the network`);
          assert.deepEqual(pageErrors, [], `${origin}: errors in the page`);
          assert.deepEqual(failed, [], `${origin}: requests failed`);
        } finally {
          await context.close();
        }
      }
    } finally {
      await browser.close();
      await server.shutdown();
      await tdb.close();
    }
  },
});
