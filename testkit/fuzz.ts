/**
 * Bad input from the spec: requests for every operation in /api/openapi.json, generated with
 * fast-check from each operation's own parameter and body schemas, then broken on purpose —
 * wrong types, missing and extra fields, huge strings and arrays, NaN/Infinity and numbers JSON
 * cannot hold, unicode and NUL bytes, malformed JSON, wrong content types, invalid ids, ids of
 * other datasets and other kinds of object, SQL injection strings, missing or foreign tokens.
 *
 * The checks, for every request: an answer (no hang, no dropped connection), never a 5xx, every
 * 4xx in the one error shape, and a database left exactly as it was by every rejected request
 * (a digest of every table before and after). Operations added to the spec are fuzzed too.
 *
 * Used by tests/fuzz_test.ts (in-process, a few hundred requests) and stress/scenarios/fuzz.ts
 * (a real server, thousands).
 */
import fc from "fast-check";

// deno-lint-ignore no-explicit-any
type Schema = Record<string, any>;

interface Parameter {
  name: string;
  in: "path" | "query" | "header";
  required?: boolean;
  schema: Schema;
}

interface Operation {
  operationId: string;
  parameters?: Parameter[];
  requestBody?: { content: Record<string, { schema: Schema }> };
  responses: Record<string, unknown>;
  security?: unknown[];
  "x-roles"?: string[];
}

export interface Spec {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
}

export interface WireRequest {
  method: string;
  /** Path and query string, already encoded. */
  url: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
}

export interface WireResponse {
  status: number;
  headers: Headers;
  text: string;
}

export type Send = (req: WireRequest) => Promise<WireResponse>;

export type Caller = "admin" | "annotator" | "annotator2" | "machine";

/** What exists in the database, so generated requests hit real objects as well as missing ones. */
export interface World {
  tokens: Record<Caller, string>;
  datasets: string[];
  images: string[];
  claims: string[];
  /** Users the fuzzer may disable or rotate (never one of the callers). */
  victims: string[];
  labels: string[];
  externalIds: string[];
}

export interface Generated {
  operationId: string;
  /** How the request was broken: "valid", "body.labels.0 <- NaN", ... */
  mutation: string;
  caller: Caller | "none" | "forged";
  req: WireRequest;
}

// ---------------------------------------------------------------------------------------------
// Building blocks

/** JSON text that JSON.stringify cannot produce (NaN, 1e999, ...), spliced in when serializing. */
class Raw {
  constructor(readonly text: string) {}
}

const SQLI = [
  "' OR '1'='1",
  "1; DROP TABLE images; --",
  "1' OR 1=1 --",
  "'); DELETE FROM annotations; --",
  '" OR ""="',
  "1 UNION SELECT api_key_hash FROM users --",
  "$1::bigint",
  "\\'; SELECT pg_sleep(5); --",
  "1)); TRUNCATE claims CASCADE; --",
];

const NASTY_STRINGS = [
  "",
  " ",
  "\u0000",
  "a\u0000b",
  "\\u0000",
  "\uD800",
  "\uDFFF x",
  "🐱‍👤",
  "\u202Etxt.exe",
  "Ω≈ç√∫",
  "\r\n\r\nX-Injected: 1",
  "<script>alert(1)</script>",
  "../../etc/passwd",
  "%00",
  "%s%s%n",
  "null",
  "undefined",
  "NaN",
  "Infinity",
  "1e999",
  "0x10",
  "x".repeat(201),
  "x".repeat(10_001),
  "é".repeat(5000),
  ...SQLI,
];

const BAD_IDS = [
  "0",
  "-1",
  "01",
  "1.5",
  "1e3",
  "abc",
  " 1",
  "1 ",
  "+1",
  "٣",
  "9".repeat(19),
  "99999999999999999999999999",
  "1".repeat(5000),
  "18446744073709551616",
  "0x1F",
  "null",
  "%00",
  "1%00",
  "..",
  ...SQLI,
];

const RAW_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-400", "-0", "0e0"]
  .map((t) => new Raw(t));

const BAD_BODIES: (string | Uint8Array)[] = [
  "",
  "null",
  "[]",
  "1",
  '"a string"',
  "true",
  "{",
  '{"a":',
  "{'single': 'quotes'}",
  "{} trailing",
  '{"a":1,}',
  "\uFEFF{}",
  '{"__proto__":{"admin":true}}',
  '{"constructor":{"prototype":{"x":1}}}',
  "[".repeat(100_000) + "]".repeat(100_000),
  '{"a":'.repeat(50_000) + "1" + "}".repeat(50_000),
  `{"s":"${"\\u0000".repeat(1000)}"}`,
  new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x7d]),
  new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d]),
  JSON.stringify({ x: "y".repeat(2_000_000) }),
];

const CONTENT_TYPES = [
  undefined,
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=xyz",
  "application/json; charset=latin1",
  "APPLICATION/JSON",
  "application/xml",
  "application/json-patch+json",
  "application/jsonx",
  "",
];

const EXTRA_KEYS = [
  "__proto__",
  "constructor",
  "source",
  "author_id",
  "id",
  "role",
  "user_id",
  "zz",
];

/** Nasty values of any JSON type, for replacing a field. */
function badValue(world: World): fc.Arbitrary<unknown> {
  const ids = [...world.datasets, ...world.images, ...world.claims, ...world.victims];
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
    { weight: 3, arbitrary: fc.constantFrom(...RAW_NUMBERS) },
    {
      weight: 3,
      arbitrary: fc.constantFrom<unknown>(
        null,
        true,
        false,
        0,
        -1,
        -0.5,
        1.5,
        2 ** 31,
        2 ** 53 + 1,
        -(2 ** 63),
        1e308,
        -1e308,
        5e-324,
        [],
        {},
        [null],
        [[[]]],
        { a: 1 },
        new Raw("123456789012345678901234567890"),
      ),
    },
    { weight: 2, arbitrary: fc.constantFrom(...BAD_IDS) },
    { weight: 2, arbitrary: fc.constantFrom(...ids.map(Number), ...ids) },
    { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
    { weight: 1, arbitrary: fc.double().map((d) => (Number.isFinite(d) ? d : new Raw(String(d)))) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 30_000 }).map((n) => Array(n).fill(0)) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 1500 }).map((n) => Array(n).fill("cat")) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  );
}

function resolve(spec: Spec, schema: Schema): Schema {
  let s = schema;
  while (s?.$ref) s = spec.components.schemas[s.$ref.replace("#/components/schemas/", "")];
  return s;
}

const ID_PATTERN = "^[1-9][0-9]{0,17}$";

/** Valid-looking values from a schema, reaching for real objects where the field names them. */
function valid(
  spec: Spec,
  schema: Schema,
  world: World,
  name: string,
  depth = 0,
): fc.Arbitrary<unknown> {
  const s = resolve(spec, schema);
  if (!s || depth > 6) return fc.constant(null);
  // Beside `properties`, oneOf and anyOf are extra rules on the object (exactly one of two ids,
  // content or "empty"), not its alternatives: the properties are generated.
  if (s.oneOf && !s.properties) {
    return fc.oneof(...s.oneOf.map((o: Schema) => valid(spec, o, world, name, depth + 1)));
  }
  if (s.anyOf && !s.properties) {
    return fc.oneof(...s.anyOf.map((o: Schema) => valid(spec, o, world, name, depth + 1)));
  }
  if (s.enum) return fc.constantFrom(...s.enum);
  const types: string[] = Array.isArray(s.type) ? s.type : [s.type ?? "object"];
  const nonNull = types.filter((t) => t !== "null");
  const base = valueOfType(spec, s, nonNull[0] ?? "null", world, name, depth);
  return types.includes("null")
    ? fc.oneof({ weight: 4, arbitrary: base }, fc.constant(null))
    : base;
}

function valueOfType(
  spec: Spec,
  s: Schema,
  type: string,
  world: World,
  name: string,
  depth: number,
): fc.Arbitrary<unknown> {
  switch (type) {
    case "null":
      return fc.constant(null);
    case "boolean":
      return fc.boolean();
    case "integer": {
      const min = s.minimum ?? -1000;
      const max = s.maximum ?? Math.max(min, 0) + 1_000_000;
      return fc.integer({ min, max });
    }
    case "number": {
      const min = s.minimum ?? -1e6;
      const max = s.maximum ?? 1e6;
      if (name === "x" || name === "y" || name === "width" || name === "height") {
        return fc.double({ min: 0.5, max: 50, noNaN: true });
      }
      return fc.double({ min, max, noNaN: true, noDefaultInfinity: true }).filter((n) =>
        !(s.exclusiveMinimum !== undefined && n <= s.exclusiveMinimum)
      );
    }
    case "string": {
      if (s.pattern === ID_PATTERN) return fc.constantFrom(...idsFor(name, world));
      if (name === "label" || name === "labels") return fc.constantFrom(...world.labels, "cat");
      if (name === "uri") {
        return fc.nat(1e6).map((n) => `s3://fuzz/${n}.jpg`);
      }
      if (name === "external_id") return fc.constantFrom(...world.externalIds, "fx-new-1");
      // A webhook URL the SSRF guard refuses without a DNS lookup (an address literal, loopback,
      // http): fuzzing never registers a webhook, so no server ever sends anywhere.
      if (name === "url") return fc.constant("http://127.0.0.1:9/fuzz");
      if (name === "api_key") return fc.constantFrom("ak_nobody", "x");
      if (s.format === "date-time") return fc.constant(new Date().toISOString());
      return fc.string({ minLength: s.minLength ?? 1, maxLength: Math.min(s.maxLength ?? 20, 20) })
        .map((v) => v.trim() ? v : `v${v}`);
    }
    case "array": {
      if (s.prefixItems) {
        return fc.tuple(
          ...s.prefixItems.map((p: Schema) => valid(spec, p, world, name, depth + 1)),
        );
      }
      const item = valid(spec, s.items ?? {}, world, name, depth + 1);
      const minLength = s.minItems ?? 0;
      return fc.array(item, {
        minLength,
        maxLength: Math.max(minLength, Math.min(s.maxItems ?? 4, 4)),
      });
    }
    default: {
      const props: Record<string, Schema> = s.properties ?? {};
      const required: string[] = s.required ?? [];
      const model: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [k, v] of Object.entries(props)) model[k] = valid(spec, v, world, k, depth + 1);
      if (!Object.keys(model).length) {
        return fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), {
          maxKeys: 3,
        });
      }
      return fc.record(model, { requiredKeys: required });
    }
  }
}

function idsFor(name: string, world: World): string[] {
  const missing = ["999999999", "999999999999999999"];
  if (/dataset/i.test(name)) return [...world.datasets, ...missing];
  if (/image|cursor/i.test(name)) return [...world.images, ...missing];
  if (/claim/i.test(name)) return [...world.claims, ...missing];
  if (/user/i.test(name)) return [...world.victims, ...missing];
  return [...world.datasets, ...world.images, ...missing];
}

/** Every path into a value: ["labels"], ["shapes", 0, "x"], ... (the root is []). */
function paths(value: unknown, at: (string | number)[] = [], out: (string | number)[][] = []) {
  out.push(at);
  if (Array.isArray(value)) {
    value.slice(0, 5).forEach((v, i) => paths(v, [...at, i], out));
  } else if (value && typeof value === "object" && !(value instanceof Raw)) {
    for (const [k, v] of Object.entries(value)) paths(v, [...at, k], out);
  }
  return out;
}

function setAt(
  root: unknown,
  at: (string | number)[],
  // deno-lint-ignore no-explicit-any
  f: (parent: any, key: string | number) => void,
) {
  // deno-lint-ignore no-explicit-any
  let parent: any = root;
  for (const k of at.slice(0, -1)) parent = parent[k];
  f(parent, at[at.length - 1]);
}

/** JSON text with Raw values spliced in. */
export function toJson(value: unknown): string {
  if (value instanceof Raw) return value.text;
  if (Array.isArray(value)) {
    if (value.length > 1000 && value.every((v) => typeof v !== "object")) {
      return JSON.stringify(value);
    }
    return `[${value.map(toJson).join(",")}]`;
  }
  if (value && typeof value === "object") {
    return `{${
      Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`).join(",")
    }}`;
  }
  return JSON.stringify(value) ?? "null";
}

const clone = <T>(v: T): T => structuredClone(v);

// ---------------------------------------------------------------------------------------------
// Requests

interface OpInfo {
  method: string;
  template: string;
  op: Operation;
  bodySchema?: Schema;
}

export function operations(spec: Spec): OpInfo[] {
  const out: OpInfo[] = [];
  for (const [template, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const bodySchema = op.requestBody?.content?.["application/json"]?.schema;
      out.push({ method: method.toUpperCase(), template, op, bodySchema });
    }
  }
  return out;
}

type Mutation =
  | { kind: "valid" }
  | { kind: "field"; pick: number; value: unknown }
  | { kind: "drop"; pick: number }
  | { kind: "extra"; pick: number; key: string; value: unknown }
  | { kind: "body"; body: string | Uint8Array }
  | { kind: "contentType"; type: string | undefined }
  | { kind: "pathParam"; value: string; encode: boolean }
  | { kind: "query"; name: string; value: string }
  | { kind: "caller"; caller: Caller | "none" | "forged" };

function mutations(world: World): fc.Arbitrary<Mutation> {
  const pick = fc.nat(1000);
  return fc.oneof(
    { weight: 2, arbitrary: fc.constant<Mutation>({ kind: "valid" }) },
    {
      weight: 8,
      arbitrary: fc.record({ kind: fc.constant("field" as const), pick, value: badValue(world) }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("drop" as const), pick }) },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant("extra" as const),
        pick,
        key: fc.oneof(fc.constantFrom(...EXTRA_KEYS), fc.string({ maxLength: 10 })),
        value: badValue(world),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant("body" as const),
        body: fc.constantFrom(...BAD_BODIES),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("contentType" as const),
        type: fc.constantFrom(...CONTENT_TYPES),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant("pathParam" as const),
        value: fc.oneof(
          fc.constantFrom(...BAD_IDS),
          fc.constantFrom(...world.datasets, ...world.images, ...world.claims, ...world.victims),
          fc.string({ unit: "grapheme", maxLength: 12 }),
        ),
        encode: fc.boolean(),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant("query" as const),
        name: fc.constantFrom("limit", "cursor", "after", "source", "format", "limit&limit=5", "x"),
        value: fc.oneof(
          fc.constantFrom(
            "-1",
            "0",
            "1001",
            "1.5",
            "1e3",
            "NaN",
            "Infinity",
            "",
            "%00",
            "%E0%A4%A",
            "xml",
            "HUMAN",
            "eyJ0eCI6IjEiLCJpZCI6IjEifQ",
            "AAAA",
            "9".repeat(70),
          ),
          fc.constantFrom(...BAD_IDS).map(encodeURIComponent),
          fc.string({ maxLength: 20 }).map(encodeURIComponent),
        ),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant("caller" as const),
        caller: fc.constantFrom<Caller | "none" | "forged">(
          "admin",
          "annotator",
          "annotator2",
          "machine",
          "none",
          "forged",
        ),
      }),
    },
  );
}

function describe(at: (string | number)[]): string {
  return ["body", ...at].join(".");
}

function short(v: unknown): string {
  const s = v instanceof Raw ? v.text : typeof v === "string" ? JSON.stringify(v) : toJson(v);
  return s.length > 40 ? `${s.slice(0, 37)}...(${s.length})` : s;
}

/** An arbitrary of requests over every operation of the spec. */
export function requests(spec: Spec, world: World): fc.Arbitrary<Generated> {
  const ops = operations(spec);
  return fc.oneof(...ops.map((info) => requestFor(spec, info, world)));
}

function requestFor(spec: Spec, info: OpInfo, world: World): fc.Arbitrary<Generated> {
  const params = info.op.parameters ?? [];
  const pathParams = params.filter((p) => p.in === "path");
  const queryParams = params.filter((p) => p.in === "query");
  const paramArb = fc.record(
    Object.fromEntries(
      [...pathParams, ...queryParams].map((p) => [p.name, valid(spec, p.schema, world, p.name)]),
    ),
    { requiredKeys: pathParams.map((p) => p.name) },
  );
  const bodyArb = info.bodySchema
    ? valid(spec, info.bodySchema, world, "body")
    : fc.constant(undefined);
  const roles = (info.op["x-roles"] ?? ["admin"]) as string[];
  const callers = (["admin", "annotator", "annotator2", "machine"] as Caller[]).filter((c) =>
    roles.includes(c.replace(/2$/, ""))
  );
  const callerArb = fc.constantFrom(...(callers.length ? callers : ["admin" as Caller]));
  return fc.record({
    params: paramArb,
    body: bodyArb,
    caller: callerArb,
    mutation: mutations(world),
  }).map(({ params, body, caller, mutation }) =>
    build(info, params as Record<string, unknown>, body, caller, mutation, world)
  );
}

function build(
  info: OpInfo,
  params: Record<string, unknown>,
  validBody: unknown,
  defaultCaller: Caller,
  m: Mutation,
  world: World,
): Generated {
  let body = clone(validBody);
  let caller: Generated["caller"] = defaultCaller;
  let rawBody: string | Uint8Array | undefined;
  let contentType: string | undefined = info.bodySchema ? "application/json" : undefined;
  let description = "valid";
  const pathValues: Record<string, string> = {};
  const query: string[] = [];
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    if (info.template.includes(`{${k}}`)) pathValues[k] = encodeURIComponent(String(v));
    else query.push(`${k}=${encodeURIComponent(String(v))}`);
  }

  switch (m.kind) {
    case "field":
    case "drop":
    case "extra": {
      if (body === undefined) {
        // No body in this operation: send one anyway.
        rawBody = toJson({ [m.kind === "extra" ? m.key : "x"]: "value" in m ? m.value : 1 });
        contentType = "application/json";
        description = "unexpected body";
        break;
      }
      const all = paths(body);
      const at = all[m.pick % all.length];
      if (m.kind === "field") {
        if (at.length === 0) body = m.value;
        else setAt(body, at, (p, k) => (p[k] = m.value));
        description = `${describe(at)} <- ${short(m.value)}`;
      } else if (m.kind === "drop") {
        if (at.length === 0) body = undefined;
        else {
          setAt(body, at, (p, k) => {
            if (Array.isArray(p)) p.splice(Number(k), 1);
            else delete p[k];
          });
        }
        description = `drop ${describe(at)}`;
      } else {
        const objects = all.filter((p) => {
          let v: unknown = body;
          // deno-lint-ignore no-explicit-any
          for (const k of p) v = (v as any)[k];
          return v && typeof v === "object" && !Array.isArray(v) && !(v instanceof Raw);
        });
        if (objects.length) {
          const target = objects[m.pick % objects.length];
          let obj: unknown = body;
          // deno-lint-ignore no-explicit-any
          for (const k of target) obj = (obj as any)[k];
          // defineProperty, so "__proto__" becomes an own key (and is serialized).
          Object.defineProperty(obj, m.key, {
            value: m.value,
            enumerable: true,
            configurable: true,
            writable: true,
          });
          description = `extra ${describe([...target, m.key])} = ${short(m.value)}`;
        } else {
          description = "valid (no object to extend)";
        }
      }
      break;
    }
    case "body":
      rawBody = m.body;
      description = `body <- ${short(typeof m.body === "string" ? m.body : "<bytes>")}`;
      if (!info.bodySchema) contentType = "application/json";
      break;
    case "contentType":
      contentType = m.type;
      description = `content-type ${JSON.stringify(m.type ?? null)}`;
      break;
    case "pathParam": {
      const names = Object.keys(pathValues);
      if (names.length) {
        const name = names[m.value.length % names.length];
        pathValues[name] = m.encode
          ? encodeURIComponent(m.value)
          : m.value.replace(/[\s?#/]/g, encodeURIComponent);
        description = `path ${name} <- ${short(m.value)}`;
      } else {
        query.push(`id=${encodeURIComponent(m.value)}`);
        description = `query id <- ${short(m.value)}`;
      }
      break;
    }
    case "query":
      query.push(`${m.name}=${m.value}`);
      description = `query ${m.name}=${short(m.value)}`;
      break;
    case "caller":
      caller = m.caller;
      description = `as ${m.caller}`;
      break;
  }

  let url = info.template.replace(/\{(\w+)\}/g, (_, k) => pathValues[k] ?? "1");
  if (query.length) url += `?${query.join("&")}`;
  const headers: Record<string, string> = {};
  if (caller === "forged") {
    headers.authorization = `Bearer ${forge(world.tokens.annotator)}`;
  } else if (caller !== "none") {
    headers.authorization = `Bearer ${world.tokens[caller]}`;
  }
  if (contentType !== undefined) headers["content-type"] = contentType;
  const sent = rawBody ?? (body === undefined ? undefined : toJson(body));
  return {
    operationId: info.op.operationId,
    mutation: description,
    caller,
    req: {
      method: info.method,
      url,
      headers,
      // fetch and Request refuse a body on GET.
      body: info.method === "GET" ? undefined : sent,
    },
  };
}

/** A token whose payload says admin, with the annotator's signature: must be refused. */
function forge(token: string): string {
  const [head, payload, sig] = token.split(".");
  const claims = JSON.parse(atob(payload.replaceAll("-", "+").replaceAll("_", "/")));
  claims.role = "admin";
  claims.sub = "1";
  const forged = btoa(JSON.stringify(claims)).replaceAll("=", "").replaceAll("+", "-")
    .replaceAll("/", "_");
  return `${head}.${forged}.${sig}`;
}

// ---------------------------------------------------------------------------------------------
// Checks

/** A digest of every table: rejected requests must leave it as it was. */
export const DIGEST_SQL = `
  SELECT md5(concat_ws('|',
    (SELECT string_agg(t::text, ',' ORDER BY t.id) FROM datasets t),
    (SELECT string_agg(t::text, ',' ORDER BY t.id) FROM images t),
    (SELECT string_agg(t::text, ',' ORDER BY t.id) FROM users t),
    (SELECT string_agg(t::text, ',' ORDER BY t.id) FROM claims t),
    (SELECT string_agg(t::text, ',' ORDER BY t.id) FROM annotations t),
    (SELECT string_agg(t::text, ',' ORDER BY t.dataset_id, t.user_id) FROM dataset_members t),
    (SELECT string_agg(t::text, ',' ORDER BY t.version) FROM schema_migrations t)
  )) AS digest`;

export interface Violation {
  operationId: string;
  mutation: string;
  problem: string;
  request: string;
  response: string;
}

export interface FuzzReport {
  requests: number;
  byStatus: Record<string, number>;
  byOperation: Record<string, number>;
  violations: Violation[];
  /** Statuses an operation answered that its spec entry does not list (documentation gaps). */
  undocumented: Set<string>;
}

export interface FuzzOptions {
  spec: Spec;
  world: World;
  send: Send;
  /** The database digest (DIGEST_SQL's value). */
  digest: () => Promise<string>;
  runs: number;
  seed: number;
  /** Called every 500 requests. */
  progress?: (done: number) => void;
}

function describeRequest(g: Generated): string {
  const body = g.req.body === undefined
    ? ""
    : typeof g.req.body === "string"
    ? g.req.body.length > 300
      ? `${g.req.body.slice(0, 300)}...(${g.req.body.length} chars)`
      : g.req.body
    : `<${g.req.body.length} bytes>`;
  const ct = g.req.headers["content-type"];
  return `${g.req.method} ${g.req.url.slice(0, 300)} as ${g.caller}` +
    `${ct !== undefined ? ` content-type=${JSON.stringify(ct)}` : ""} ${body}`;
}

/** Sends `runs` generated requests one at a time and checks each answer. */
export async function fuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const { spec } = opts;
  const documented = new Map<string, Set<string>>();
  for (const info of operations(spec)) {
    documented.set(info.op.operationId, new Set(Object.keys(info.op.responses)));
  }
  const samples = fc.sample(requests(spec, opts.world), { numRuns: opts.runs, seed: opts.seed });
  const report: FuzzReport = {
    requests: 0,
    byStatus: {},
    byOperation: {},
    violations: [],
    undocumented: new Set(),
  };
  let before = await opts.digest();
  for (const g of samples) {
    let res: WireResponse;
    try {
      res = await opts.send(g.req);
    } catch (e) {
      res = { status: 0, headers: new Headers(), text: String(e) };
    }
    report.requests++;
    report.byStatus[res.status] = (report.byStatus[res.status] ?? 0) + 1;
    report.byOperation[g.operationId] = (report.byOperation[g.operationId] ?? 0) + 1;
    const problems: string[] = [];
    if (res.status === 0) problems.push(`no answer: ${res.text}`);
    if (res.status >= 500) problems.push(`${res.status}`);
    if (res.status >= 400) {
      let shaped = false;
      try {
        const b = JSON.parse(res.text);
        shaped = typeof b?.error?.code === "string" && typeof b?.error?.message === "string" &&
          !!res.headers.get("content-type")?.includes("application/json");
      } catch {
        // not JSON
      }
      if (!shaped) problems.push("not the error shape");
    }
    if (res.status > 0 && !documented.get(g.operationId)?.has(String(res.status))) {
      report.undocumented.add(`${g.operationId} ${res.status}`);
    }
    const after = await opts.digest();
    if ((res.status >= 400 || res.status === 0) && after !== before) {
      problems.push("the database changed");
    }
    before = after;
    for (const problem of problems) {
      report.violations.push({
        operationId: g.operationId,
        mutation: g.mutation,
        problem,
        request: describeRequest(g),
        response: `${res.status} ${res.text.slice(0, 300)}`,
      });
    }
    if (report.requests % 500 === 0) opts.progress?.(report.requests);
  }
  return report;
}

// ---------------------------------------------------------------------------------------------
// The world the fuzzer plays in

/**
 * Makes two datasets (different labels, k=1 and k=2) with sized images, users of every role,
 * live and ended claims, human and machine annotations — through the API itself.
 */
export async function buildWorld(
  send: Send,
  adminToken: string,
  tag: string,
): Promise<World> {
  const json = async (token: string, method: string, url: string, body?: unknown) => {
    const res = await send({
      method,
      url,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status >= 300 && res.status !== 204) {
      throw new Error(`${method} ${url}: ${res.status} ${res.text}`);
    }
    return res.text ? JSON.parse(res.text) : null;
  };
  const user = async (role: string, name: string) => {
    const u = await json(adminToken, "POST", "/api/v1/users", { name: `${tag}-${name}`, role });
    const t = await json("", "POST", "/api/v1/auth/token", { api_key: u.api_key });
    return { id: u.user.id as string, token: t.access_token as string };
  };
  const annotator = await user("annotator", "annotator");
  const annotator2 = await user("annotator", "annotator2");
  const machine = await user("machine", "machine");
  const victims = [
    (await user("annotator", "victim1")).id,
    (await user("machine", "victim2")).id,
  ];
  const datasets: string[] = [];
  const images: string[] = [];
  const externalIds: string[] = [];
  for (const [i, labels] of [["cat", "dog"], ["car", "bus", "cat"]].entries()) {
    const ds = await json(adminToken, "POST", "/api/v1/datasets", {
      name: `${tag}-ds-${i}`,
      labels,
      annotations_per_image: i + 1,
      access: "open",
    });
    datasets.push(ds.id);
    const reg = await json(adminToken, "POST", `/api/v1/datasets/${ds.id}/images`, {
      images: Array.from({ length: 12 }, (_, j) => ({
        uri: `s3://fuzz/${tag}/${i}/${j}.jpg`,
        external_id: `fx-${i}-${j}`,
        width: 100,
        height: 100,
        priority: j % 3,
      })),
    });
    images.push(...reg.images.map((r: { id: string }) => r.id));
    externalIds.push(`fx-${i}-0`, `fx-${i}-1`);
  }
  // Claims: a completed one, a released one, and a live one per annotator and dataset.
  const claims: string[] = [];
  for (const who of [annotator, annotator2]) {
    for (const ds of datasets) {
      const done = await json(who.token, "POST", `/api/v1/datasets/${ds}/claims`);
      claims.push(done.claim.id);
      await json(who.token, "POST", `/api/v1/images/${done.claim.image_id}/annotations`, {
        claim_id: done.claim.id,
        labels: [ds === datasets[0] ? "cat" : "car"],
      });
      const released = await json(who.token, "POST", `/api/v1/datasets/${ds}/claims`);
      claims.push(released.claim.id);
      await json(who.token, "DELETE", `/api/v1/claims/${released.claim.id}`);
      const live = await json(who.token, "POST", `/api/v1/datasets/${ds}/claims`);
      claims.push(live.claim.id);
    }
  }
  await json(machine.token, "POST", `/api/v1/datasets/${datasets[0]}/predictions`, {
    predictions: images.slice(0, 3).map((id) => ({
      image_id: id,
      model: { name: "m", version: "1" },
      labels: ["cat"],
    })),
  });
  return {
    tokens: {
      admin: adminToken,
      annotator: annotator.token,
      annotator2: annotator2.token,
      machine: machine.token,
    },
    datasets,
    images,
    claims,
    victims,
    labels: ["cat", "dog", "car", "bus"],
    externalIds,
  };
}
