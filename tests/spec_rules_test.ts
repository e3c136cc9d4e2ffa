/**
 * The zod schemas (what the server checks) and the OpenAPI document generated from them (what
 * clients check) accept the same request bodies: the document states every rule the server
 * enforces that JSON Schema can state. Judged by Ajv, an independent JSON Schema validator, on
 * valid bodies changed in one place toward the edges (testkit/conformance.ts mutate). The HTTP
 * side of the same agreement is tests/conformance_test.ts.
 */
import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import fc from "fast-check";
import type { z } from "zod";
import { mutate, random } from "../testkit/conformance.ts";
import { builtDocument } from "../scripts/spec.ts";
import { AmendAnnotation, CreateAnnotation, CreatePredictions } from "../schemas/annotations.ts";
import { NO_NUL, NOT_BLANK } from "../schemas/common.ts";
import { CreateDataset, UpdateDataset } from "../schemas/datasets.ts";
import { RegisterImages, SetPriorities, UpdateImage } from "../schemas/images.ts";
import { SubmitReview } from "../schemas/reviews.ts";
import { CreateUser, TokenRequest } from "../schemas/users.ts";
import { CreateWebhook, UpdateWebhook } from "../schemas/webhooks.ts";
import { FEED_CURSOR } from "../sql/annotations/queries.ts";

// deno-lint-ignore no-explicit-any
type Schema = Record<string, any>;

const SPEC_ID = "https://spec.local/openapi.json";
const document = await builtDocument() as Schema;
const components = document.components.schemas as Record<string, Schema>;
const ajv = new Ajv2020({ strict: false });
ajv.addSchema({ $id: SPEC_ID, components: document.components });

/** Whether the document's component `name` accepts `value`. */
function documentAccepts(name: string, value: unknown): boolean {
  const validate = ajv.getSchema(`${SPEC_ID}#/components/schemas/${name}`);
  if (!validate) throw new Error(`no component ${name}`);
  return validate(value) as boolean;
}

const model = { name: "detector", version: "7" };
const shapes = [
  { type: "bbox", label: "cat", x: 1, y: 2, width: 3, height: 4, confidence: 0.5 },
  { type: "polygon", label: "dog", points: [[0, 0], [5, 0], [2.5, 4]] },
  { type: "point", label: "cat", x: 7, y: 8 },
];

/** For each request body component: its zod schema and valid bodies to change. */
const BODIES: [string, z.ZodType, unknown[]][] = [
  ["TokenRequest", TokenRequest, [{ api_key: "ak_x" }]],
  ["CreateUser", CreateUser, [{ name: "alice", role: "annotator" }]],
  ["CreateDataset", CreateDataset, [
    { name: "pets", labels: ["cat", "dog"] },
    { name: "p", description: "d", labels: ["a"], annotations_per_image: 2, claim_ttl_seconds: 60 },
    { name: "r", labels: ["a"], review_rate: 0.25 },
  ]],
  ["UpdateDataset", UpdateDataset, [
    { labels: ["cat", "dog", "bird"] },
    { description: null, annotations_per_image: 3, claim_ttl_seconds: 30 },
    { review_rate: 1 },
  ]],
  ["RegisterImages", RegisterImages, [{
    images: [
      {
        uri: "s3://bucket/a.jpg",
        external_id: "a",
        width: 640,
        height: 480,
        priority: 0.5,
        metadata: { camera: "front", tags: ["x", { n: 1, z: null }] },
      },
      { uri: "https://host/b.jpg", external_id: null, width: null, height: null },
      { uri: "file:///data/c.png" },
    ],
  }]],
  ["UpdateImage", UpdateImage, [{ priority: 2 }, { metadata: { k: "v", n: [1, 2] } }]],
  ["SetPriorities", SetPriorities, [{
    priorities: [{ image_id: "1", priority: 1 }, { external_id: "e", priority: -2.5 }],
  }]],
  ["CreateAnnotation", CreateAnnotation, [
    { claim_id: "3", labels: ["cat"], shapes },
    { claim_id: "3", empty: true },
    { model, confidence: 0.9, shapes: [shapes[1]], empty: false },
  ]],
  ["AmendAnnotation", AmendAnnotation, [{ labels: ["cat"], shapes }, { empty: true }]],
  ["SubmitReview", SubmitReview, [
    { claim_id: "9", decision: "accept" },
    { claim_id: "9", decision: "accept", comment: "fine" },
    { claim_id: "9", decision: "reject", comment: "the cat is a dog" },
    { claim_id: "9", decision: "fix", annotation: { labels: ["dog"], shapes } },
    { claim_id: "9", decision: "fix", comment: "c", annotation: { empty: true } },
  ]],
  ["CreatePredictions", CreatePredictions, [{
    predictions: [
      { image_id: "1", model, confidence: 0.4, labels: ["cat", "dog"], shapes },
      { external_id: "e", model, empty: true },
      { image_id: "2", model, shapes: [shapes[0]] },
    ],
  }]],
  ["CreateWebhook", CreateWebhook, [
    { url: "https://hooks.example/a", events: ["annotation.created", "image.completed"] },
    {
      url: "http://10.0.0.1:8080/x?y=1",
      events: ["claim.expired"],
      dataset_id: "4",
      description: null,
    },
  ]],
  ["UpdateWebhook", UpdateWebhook, [{ enabled: false }, {
    url: "https://h/",
    events: ["dataset.completed"],
  }]],
];

Deno.test("the zod schemas and the OpenAPI document accept the same bodies, at the edges", () => {
  const rand = random(20261207);
  const disagreements: string[] = [];
  let accepted = 0;
  let refused = 0;
  for (const [name, schema, bodies] of BODIES) {
    for (const body of bodies) {
      assert.ok(
        documentAccepts(name, body),
        `${name}: the document refuses ${JSON.stringify(body)}`,
      );
      assert.ok(schema.safeParse(body).success, `${name}: zod refuses ${JSON.stringify(body)}`);
      for (let i = 0; i < 400; i++) {
        const changed = mutate(body, rand);
        if (!changed) continue;
        const byDocument = documentAccepts(name, changed.value);
        const byZod = schema.safeParse(changed.value).success;
        if (byDocument) accepted++;
        else refused++;
        if (byDocument !== byZod) {
          disagreements.push(
            `${name} (${changed.how}): the document ${byDocument ? "accepts" : "refuses"}, ` +
              `the server ${byZod ? "accepts" : "refuses"} ${JSON.stringify(changed.value)}`,
          );
        }
      }
    }
  }
  assert.deepEqual([...new Set(disagreements)].slice(0, 20), []);
  // Both kinds of edge were tried, many of each.
  assert.ok(accepted > 500 && refused > 1500, `accepted ${accepted}, refused ${refused}`);
});

Deno.test("blank means what String.prototype.trim says, in the server's regex and the document's pattern", () => {
  const pattern = components.CreateDataset.properties.name.pattern;
  assert.equal(pattern, NOT_BLANK.source);
  // Ajv compiles patterns with the u flag, as JSON Schema validators do.
  const asDocument = new RegExp(pattern, "u");
  for (let c = 0; c <= 0xffff; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    const s = String.fromCharCode(c);
    for (const text of [s, ` ${s} `, `x${s}`]) {
      const expected = !text.includes("\u0000") && text.trim() !== "";
      assert.equal(
        NOT_BLANK.test(text),
        expected,
        `U+${c.toString(16)} in ${JSON.stringify(text)}`,
      );
      assert.equal(asDocument.test(text), expected, `U+${c.toString(16)}, as the document says`);
    }
  }
});

Deno.test("metadata: the document's JsonValue refuses NUL characters where the server does", () => {
  // JSON values with NUL characters now and then, in keys and in strings.
  const withNul = fc.string({ maxLength: 6 }).chain((s) =>
    fc.constantFrom(s, `${s}\u0000`, `\u0000${s}`)
  );
  const value = fc.letrec((tie) => ({
    any: fc.oneof(
      { depthSize: "small" },
      fc.constantFrom(null, true, false, 0, -1.5, 1e300),
      withNul,
      fc.array(tie("any"), { maxLength: 3 }),
      fc.dictionary(withNul, tie("any"), { maxKeys: 3 }),
    ),
  })).any;
  fc.assert(
    fc.property(fc.dictionary(withNul, value, { maxKeys: 4 }), (metadata) => {
      const body = { metadata };
      assert.equal(
        documentAccepts("UpdateImage", body),
        UpdateImage.safeParse(body).success,
        JSON.stringify(body),
      );
    }),
    { seed: 20261207, numRuns: 2000 },
  );
  // The size bound is the one rule JSON Schema cannot state: it is in the description.
  const metadata = components.UpdateImage.properties.metadata;
  assert.match(metadata.description, /16384 bytes/);
  const big = { metadata: { s: "x".repeat(16 * 1024) } };
  assert.equal(UpdateImage.safeParse(big).success, false);
});

// The document states each rule the server enforces.

const c = components;
const nameFields: [string, Schema][] = [
  ["CreateDataset.name", c.CreateDataset.properties.name],
  ["CreateDataset.labels.items", c.CreateDataset.properties.labels.items],
  ["CreateUser.name", c.CreateUser.properties.name],
  ["Model.name", c.Model.properties.name],
  ["Model.version", c.Model.properties.version],
  ["NewImage.external_id", c.NewImage.properties.external_id],
  ["Prediction.external_id", c.Prediction.properties.external_id],
  ["BBox.label", c.BBox.properties.label],
  ["CreateAnnotation.labels.items", c.CreateAnnotation.properties.labels.items],
];

Deno.test("document rules: names and labels: not blank, no NUL, a maximum length", () => {
  for (const [where, s] of nameFields) {
    assert.equal(s.pattern, NOT_BLANK.source, where);
    assert.ok(s.maxLength > 0, `${where}: maxLength`);
  }
  assert.equal(c.CreateDataset.properties.description.pattern, NO_NUL.source);
  assert.deepEqual(c.CreateUser.properties.name.not, { pattern: "^idp:" });
});

Deno.test("document rules: a dataset's labels are distinct; a PATCH changes something", () => {
  assert.equal(c.CreateDataset.properties.labels.uniqueItems, true);
  assert.equal(c.UpdateDataset.properties.labels.uniqueItems, true);
  assert.equal(c.UpdateDataset.minProperties, 1);
  assert.equal(c.UpdateImage.minProperties, 1);
});

Deno.test("document rules: an image: a known URI scheme, width and height together, metadata", () => {
  const uri = new RegExp(c.NewImage.properties.uri.pattern, "u");
  for (const ok of ["s3://b/a.jpg", "gs://b/a", "https://h/a", "http://h/a", "file:///a"]) {
    assert.ok(uri.test(ok), ok);
  }
  for (const bad of ["ftp://h/a", "s3://", "s3://b/a b", "HTTPS://h/a", "s3://b/\u0000"]) {
    assert.ok(!uri.test(bad), bad);
  }
  assert.equal(c.NewImage.anyOf.length, 2);
  const metadata = c.NewImage.properties.metadata;
  assert.equal(metadata.additionalProperties.$ref, "#/components/schemas/JsonValue");
  assert.equal(metadata.propertyNames.pattern, NO_NUL.source);
  assert.ok(c.JsonValue.anyOf, "JsonValue is a component");
});

Deno.test("document rules: bulk items name their image by exactly one of image_id and external_id", () => {
  for (const name of ["Prediction", "PriorityItem"]) {
    assert.deepEqual(c[name].oneOf, [{ required: ["image_id"] }, { required: ["external_id"] }]);
  }
});

Deno.test("document rules: an annotation has labels, shapes, or says empty", () => {
  for (const name of ["CreateAnnotation", "Prediction"]) {
    assert.equal(c[name].properties.empty.type, "boolean");
    assert.equal(c[name].anyOf.length, 3, name);
  }
  assert.ok(!documentAccepts("CreateAnnotation", { claim_id: "1" }));
  assert.ok(!documentAccepts("CreateAnnotation", { claim_id: "1", labels: [] }));
  assert.ok(!documentAccepts("CreateAnnotation", { labels: ["cat"], empty: true }));
  assert.ok(documentAccepts("CreateAnnotation", { claim_id: "1", labels: [], empty: true }));
  assert.ok(documentAccepts("CreateAnnotation", { labels: ["cat"], empty: false }));
});

Deno.test("document rules: a polygon's point is a pair", () => {
  const point = c.Polygon.properties.points.items;
  assert.equal(point.minItems, 2);
  assert.equal(point.maxItems, 2);
  assert.equal(point.prefixItems.length, 2);
});

Deno.test("document rules: the feed cursor has the form the server hands out", () => {
  const params = document.paths["/api/v1/datasets/{datasetId}/annotations"].get.parameters;
  const after = params.find((p: Schema) => p.name === "after");
  assert.equal(after.schema.pattern, FEED_CURSOR.source);
  assert.match(after.description, /handed out/);
});

Deno.test("document rules: every bound is stated", () => {
  assert.equal(c.CreateDataset.properties.labels.maxItems, 1000);
  assert.equal(c.CreateDataset.properties.description.maxLength, 10_000);
  assert.equal(c.NewImage.properties.uri.maxLength, 2048);
  assert.equal(c.NewImage.properties.external_id.maxLength, 256);
  assert.equal(c.RegisterImages.properties.images.maxItems, 10_000);
  assert.equal(c.CreatePredictions.properties.predictions.maxItems, 10_000);
  assert.equal(c.SetPriorities.properties.priorities.maxItems, 10_000);
  assert.equal(c.CreateAnnotation.properties.shapes.maxItems, 1000);
  assert.equal(c.CreateAnnotation.properties.labels.maxItems, 1000);
  assert.equal(c.Polygon.properties.points.maxItems, 10_000);
  assert.equal(c.BBox.properties.width.exclusiveMinimum, 0);
});
