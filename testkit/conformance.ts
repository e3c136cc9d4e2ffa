/**
 * Does the server accept what its OpenAPI document says it accepts, refuse what it says it
 * refuses, and answer what it says it answers? Requests are generated from the document alone by
 * independent tools: values by json-schema-faker, judged by Ajv (JSON Schema 2020-12, as OpenAPI
 * 3.1 uses), so neither shares a line with the zod schemas the document is generated from.
 *
 * For every operation, requests the document says are valid are sent to a real server, and each
 * answer must:
 * - not be a 5xx;
 * - have a status the operation declares, with a content type it declares for that status, and a
 *   body its schema for that status accepts;
 * - not be a 400, unless the fields it names carry a rule the document states in a description
 *   only (DESCRIBED_RULES: rules that depend on the caller's role), nor a 422 but for the
 *   dataset's labels or the image's bounds (state the request cannot know from the document).
 * Then each operation with a body or a query gets edge cases: a valid request changed in one
 * place, toward what clients get wrong (blank and NUL strings, duplicates, a field too many or
 * too few, a point of one number, a cursor of another form). Ajv says whether the document still
 * accepts it: if it does, the checks above apply; if not, the server must refuse it with a 4xx
 * (the document must not be stricter than the server either).
 *
 * Used by tests/conformance_test.ts against a server process.
 */
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import { createGeneratorSync } from "json-schema-faker";
import type { Caller, Spec, World } from "./fuzz.ts";

// deno-lint-ignore no-explicit-any
type Schema = Record<string, any>;

interface Parameter {
  name: string;
  in: "path" | "query" | "header";
  required?: boolean;
  schema: Schema;
}

interface Response {
  content?: Record<string, { schema?: Schema }>;
}

interface Operation {
  operationId: string;
  parameters?: Parameter[];
  requestBody?: { content: Record<string, { schema: Schema }> };
  responses: Record<string, Response>;
  security?: Record<string, string[]>[];
  "x-roles"?: string[];
}

interface OpInfo {
  method: string;
  path: string;
  op: Operation;
  body?: Schema;
}

/**
 * Rules the document states in a description only, since they depend on who calls: which 400s
 * they explain. createAnnotation's caller is chosen so that they hold when they can (callerFor).
 */
const WEBHOOK_URL = {
  paths: ["body.url"],
  reason: "that the URL parses, and where it may point (the SSRF guard: what its host resolves " +
    "to, https only in production), depend on more than its form",
};

const DESCRIBED_RULES: Record<string, { paths: string[]; reason: string }> = {
  createWebhook: WEBHOOK_URL,
  updateWebhook: WEBHOOK_URL,
  createAnnotation: {
    paths: ["body.claim_id", "body.model", "body.confidence", "body.next"],
    reason: "claim_id, model, confidence and next are allowed or required by the caller's role",
  },
};

/** 422 codes that depend on the dataset (its labels) or the image (its size), not the request. */
const STATE_422 = new Set(["unknown_label", "out_of_bounds"]);

export interface Disagreement {
  operationId: string;
  problem: string;
  request: string;
  response: string;
}

export interface ConformanceReport {
  /** Valid requests sent, by operation. */
  valid: Record<string, number>;
  /** Edge-case requests the document accepts, by operation. */
  edgesValid: Record<string, number>;
  /** Edge-case requests the document refuses, by operation. */
  edgesInvalid: Record<string, number>;
  /** Answers to valid requests by status. */
  byStatus: Record<string, number>;
  /** Generated values Ajv refused and that were not sent (json-schema-faker's misses). */
  generatorMisses: number;
  disagreements: Disagreement[];
}

export interface ConformanceOptions {
  spec: Spec;
  /** The server's base URL, `http://127.0.0.1:<port>`. */
  base: string;
  world: World;
  /** Valid requests per operation. */
  perOperation: number;
  /** Edge-case requests (one change to a valid one) per operation with a body or a query. */
  edgesPerOperation: number;
  seed: number;
}

const SPEC_ID = "https://spec.local/openapi.json";

const DATE_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)$/i;

/** A deterministic stream of numbers in [0, 1) (mulberry32). */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `schema` with its component references made absolute, for Ajv (which holds the document). */
function absolute(schema: Schema): Schema {
  return JSON.parse(
    JSON.stringify(schema).replaceAll('"$ref":"#/components/', `"$ref":"${SPEC_ID}#/components/`),
  );
}

function operations(spec: Spec): OpInfo[] {
  const out: OpInfo[] = [];
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods as Record<string, Operation>)) {
      const body = op.requestBody?.content?.["application/json"]?.schema;
      out.push({ method: method.toUpperCase(), path, op, body });
    }
  }
  // Deleting last, so images and users are still there for the other operations.
  return out.sort((a, b) => Number(a.method === "DELETE") - Number(b.method === "DELETE"));
}

/**
 * The components with every object that offers alternatives (`anyOf` or `oneOf` beside its
 * `properties`) narrowed to one of them, chosen by `rand`: json-schema-faker ignores such
 * alternatives (it generated no valid Prediction at all). Narrowing only removes valid values
 * (it never adds any), and what is sent is still checked against the document as served.
 */
function narrowed(components: Schema, rand: () => number): Schema {
  const schemas: Schema = structuredClone(components.schemas);
  for (const schema of Object.values(schemas) as Schema[]) {
    for (const keyword of ["oneOf", "anyOf"] as const) {
      const branches: Schema[] | undefined = schema[keyword];
      if (!schema.properties || !branches) continue;
      const chosen = branches[Math.floor(rand() * branches.length)];
      delete schema[keyword];
      schema.required = [...new Set([...(schema.required ?? []), ...(chosen.required ?? [])])];
      for (const [name, extra] of Object.entries(chosen.properties ?? {}) as [string, Schema][]) {
        const base = schema.properties[name] ?? {};
        schema.properties[name] = base.$ref ? { allOf: [base, extra] } : { ...base, ...extra };
      }
      if (keyword === "oneOf") {
        // Exactly one: leave out what the other alternatives require.
        for (const other of branches) {
          for (const name of other.required ?? []) {
            if (!schema.required.includes(name)) delete schema.properties[name];
          }
        }
      }
    }
  }
  return { ...components, schemas };
}

export async function checkConformance(opts: ConformanceOptions): Promise<ConformanceReport> {
  const { spec, base, world } = opts;
  const ajv = new Ajv2020({ strict: false, allErrors: false });
  // The one format the document uses, as RFC 3339 has it (what toISOString writes is one).
  ajv.addFormat("date-time", DATE_TIME);
  ajv.addSchema({ $id: SPEC_ID, components: spec.components } as Schema);
  const validators = new Map<Schema, ValidateFunction>();
  const validate = (schema: Schema, value: unknown): boolean => {
    let v = validators.get(schema);
    if (!v) {
      v = ajv.compile(absolute(schema));
      validators.set(schema, v);
    }
    return v(value);
  };

  const rand = random(opts.seed);
  const faker = createGeneratorSync({
    seed: opts.seed,
    // Small values: the point is the rules, not the sizes (sizes have their own tests).
    maxItems: 4,
    maxLength: 12,
    maxDepth: 12,
  });
  const report: ConformanceReport = {
    valid: {},
    edgesValid: {},
    edgesInvalid: {},
    byStatus: {},
    generatorMisses: 0,
    disagreements: [],
  };

  /** A value of `schema` the document accepts, or undefined after a few misses. */
  const generate = (schema: Schema): unknown => {
    for (let attempt = 0; attempt < 8; attempt++) {
      const components = narrowed(spec.components, rand);
      let value: unknown;
      try {
        value = faker.generate({ ...schema, components });
      } catch {
        // It gives up on some schemas (minProperties beside only optional properties).
        report.generatorMisses++;
        continue;
      }
      if (validate(schema, value)) return value;
      report.generatorMisses++;
    }
    return undefined;
  };

  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)];

  /** The world's objects in place of generated ids and labels, most of the time. */
  const realistic = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(realistic);
    if (!value || typeof value !== "object") return value;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      // Always a webhook URL the server refuses before any DNS lookup (production: https only),
      // so no request ever registers a webhook that would be sent to, or resolves a name.
      if (k === "url" && typeof v === "string") {
        out[k] = "http://127.0.0.1:9/conformance";
        continue;
      }
      const swap = rand() < 0.75;
      if (swap && k === "label" && typeof v === "string") out[k] = pick(world.labels);
      else if (swap && k === "labels" && Array.isArray(v)) {
        out[k] = [...new Set(v.map(() => pick(world.labels)))];
      } else if (swap && k === "image_id" && typeof v === "string") out[k] = pick(world.images);
      else if (swap && k === "claim_id" && typeof v === "string") out[k] = pick(world.claims);
      else if (swap && k === "external_id" && typeof v === "string") {
        out[k] = pick(world.externalIds);
      } else out[k] = realistic(v);
    }
    return out;
  };

  /** A real object for a path parameter: users only among those the run may disable. */
  const realParam = (name: string, generated: unknown): unknown => {
    if (name === "datasetId") return pick(world.datasets);
    if (name === "imageId") return pick(world.images);
    if (name === "claimId") return pick(world.claims);
    if (name === "userId") return pick(world.victims);
    if (name === "external_id") return pick(world.externalIds);
    if (name === "after") return "0.0";
    return generated;
  };

  const callerFor = (info: OpInfo, body: unknown): Caller | null => {
    const roles = info.op["x-roles"];
    if (!roles) return null;
    if (info.op.operationId === "createAnnotation") {
      const b = body as { model?: unknown; claim_id?: unknown };
      if (b.model !== undefined) return "machine";
      if (b.claim_id !== undefined) return pick(["annotator", "annotator2", "admin"] as const);
      return "admin";
    }
    const callers = (["admin", "annotator", "annotator2", "machine"] as Caller[]).filter((c) =>
      roles.includes(c.replace(/2$/, ""))
    );
    return pick(callers);
  };

  const send = async (
    info: OpInfo,
    caller: Caller | null,
    params: Record<string, string>,
    body: unknown,
  ) => {
    const query: string[] = [];
    let path = info.path;
    for (const p of info.op.parameters ?? []) {
      const value = params[p.name];
      if (value === undefined) continue;
      if (p.in === "path") path = path.replace(`{${p.name}}`, encodeURIComponent(value));
      else query.push(`${encodeURIComponent(p.name)}=${encodeURIComponent(value)}`);
    }
    const url = path + (query.length ? `?${query.join("&")}` : "");
    const headers: Record<string, string> = {};
    if (caller) headers.authorization = `Bearer ${world.tokens[caller]}`;
    const text = body === undefined ? undefined : JSON.stringify(body);
    if (text !== undefined) headers["content-type"] = "application/json";
    // Never followed: a redirect (getImageMedia) leads off this server.
    const res = await fetch(base + url, {
      method: info.method,
      headers,
      body: text,
      redirect: "manual",
    });
    const answer = { status: res.status, type: res.headers.get("content-type"), text: "" };
    answer.text = await res.text();
    const request = `${info.method} ${url} as ${caller ?? "anonymous"}` +
      (text === undefined ? "" : ` ${text.slice(0, 400)}`);
    return { ...answer, request, response: `${answer.status} ${answer.text.slice(0, 400)}` };
  };

  /** Problems with an answer against what the operation declares (status, type, body). */
  const declared = (
    info: OpInfo,
    res: { status: number; type: string | null; text: string },
  ): string[] => {
    const response = info.op.responses[String(res.status)] ?? info.op.responses.default;
    if (!response) return [`status ${res.status} is not declared`];
    if (!response.content) {
      return res.text ? [`status ${res.status} declares no body, but one came`] : [];
    }
    const type = (res.type ?? "").split(";")[0].trim().toLowerCase();
    const media = response.content[type];
    if (!media) return [`content type ${res.type} is not declared for ${res.status}`];
    if (type !== "application/json" || !media.schema) return [];
    let parsed: unknown;
    try {
      parsed = JSON.parse(res.text);
    } catch {
      return ["the body is not JSON"];
    }
    if (validate(media.schema, parsed)) return [];
    const errors = validators.get(media.schema)?.errors;
    return [`the body does not match the declared schema: ${JSON.stringify(errors?.[0])}`];
  };

  const paramsFor = (info: OpInfo): Record<string, string> | null => {
    const params: Record<string, string> = {};
    for (const p of info.op.parameters ?? []) {
      if (!p.required && rand() < 0.5) continue;
      let value = generate(p.schema);
      if (value === undefined) return null;
      if (rand() < 0.75) value = realParam(p.name, value);
      params[p.name] = String(value);
    }
    return params;
  };

  const disagree = (info: OpInfo, problem: string, r: { request: string; response: string }) =>
    report.disagreements.push({ operationId: info.op.operationId, problem, ...r });

  /** A body and parameters the document accepts, with the world's objects where it can. */
  const validRequest = (info: OpInfo) => {
    let body: unknown;
    if (info.body) {
      const generated = generate(info.body);
      if (generated === undefined) return null;
      const real = realistic(generated);
      body = validate(info.body, real) ? real : generated;
    }
    const params = paramsFor(info);
    return params ? { body, params } : null;
  };

  /** Checks the answer to a request the document accepts (`how`: what was changed, if anything). */
  const checkAccepted = (info: OpInfo, res: Answer, how: string) => {
    const rules = DESCRIBED_RULES[info.op.operationId];
    const problems = declared(info, res);
    const valid = how ? `a valid request (${how})` : "a valid request";
    if (res.status >= 500) problems.push(`${valid} answered ${res.status}`);
    if (res.status === 400) {
      const paths = errorPaths(res.text);
      const explained = rules && paths.length && paths.every((p) => rules.paths.includes(p));
      if (!explained) problems.push(`${valid} was refused with 400`);
    }
    if (res.status === 422 && !STATE_422.has(errorCode(res.text))) {
      problems.push(`${valid} was refused with 422 for its form`);
    }
    for (const problem of problems) disagree(info, problem, res);
  };

  /** Checks the answer to a request the document refuses. */
  const checkRefused = (info: OpInfo, res: Answer, how: string) => {
    const problems = declared(info, res);
    if (res.status < 400 || res.status >= 500) {
      problems.push(`a request the document refuses (${how}) answered ${res.status}`);
    }
    for (const problem of problems) disagree(info, problem, res);
  };

  for (const info of operations(spec)) {
    const id = info.op.operationId;
    for (let i = 0; i < opts.perOperation; i++) {
      const req = validRequest(info);
      if (!req) continue;
      const res = await send(info, callerFor(info, req.body), req.params, req.body);
      report.valid[id] = (report.valid[id] ?? 0) + 1;
      report.byStatus[res.status] = (report.byStatus[res.status] ?? 0) + 1;
      checkAccepted(info, res, "");
    }
    // Edge cases: one change to a valid request, toward what clients get wrong (blank and NUL
    // strings, duplicates, a field too many or too few, a pair of one number). Ajv says whether
    // the result is still valid; the server must agree either way.
    const queryParams = (info.op.parameters ?? []).filter((p) => p.in === "query");
    if (!info.body && !queryParams.length) continue;
    for (let i = 0; i < opts.edgesPerOperation; i++) {
      const req = validRequest(info);
      if (!req) continue;
      const inQuery = !info.body || (queryParams.length > 0 && rand() < 0.25);
      let accepted: boolean;
      let how: string;
      let body = req.body;
      const params = { ...req.params };
      if (inQuery) {
        const p = pick(queryParams);
        const value = pick(EDGE_QUERY_VALUES);
        params[p.name] = value;
        how = `query.${p.name}=${JSON.stringify(value)}`;
        accepted = validate(p.schema, queryValue(p.schema, value));
      } else {
        const changed = mutate(req.body, rand);
        if (!changed) continue;
        body = changed.value;
        how = changed.how;
        accepted = validate(info.body!, body);
      }
      const res = await send(info, callerFor(info, body ?? {}), params, body);
      if (accepted) {
        report.edgesValid[id] = (report.edgesValid[id] ?? 0) + 1;
        checkAccepted(info, res, how);
      } else {
        report.edgesInvalid[id] = (report.edgesInvalid[id] ?? 0) + 1;
        checkRefused(info, res, how);
      }
    }
  }
  return report;
}

interface Answer {
  status: number;
  type: string | null;
  text: string;
  request: string;
  response: string;
}

/** A query string value as a validator sees it: integers are parsed, as the server does. */
function queryValue(schema: Schema, value: string): unknown {
  if (schema.type !== "integer" && schema.type !== "number") return value;
  return /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value;
}

/** Query values at the edges of the parameters' forms. */
const EDGE_QUERY_VALUES = [
  "",
  " ",
  "0",
  "-1",
  "1",
  "1000",
  "1001",
  "1.5",
  "abc",
  "0.0",
  "1.2.3",
  "18446744073709551615.1",
  "9999999999999999999.999999999999999999",
  "a\u0000b",
  "human",
  "coco",
  "HUMAN",
];

function errorBody(text: string): { code?: string; details?: { path: string }[] } {
  try {
    return JSON.parse(text).error ?? {};
  } catch {
    return {};
  }
}

const errorCode = (text: string) => errorBody(text).code ?? "";
const errorPaths = (text: string) => (errorBody(text).details ?? []).map((d) => d.path);

type Path = (string | number)[];

/** Every path into a value: [], ["labels"], ["shapes", 0, "x"], ... */
function paths(value: unknown, at: Path = []): Path[] {
  const out = [at];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...at, i])));
  else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...at, k]));
  }
  return out;
}

/** Values at the edges of the forms the document's fields take. */
const EDGE_VALUES: unknown[] = [
  "",
  " ",
  "\t\n",
  "\u00a0",
  "\ufeff",
  "a\u0000b",
  "\u0000",
  "x",
  " x ",
  "idp:x",
  "ftp://host/a.jpg",
  "s3://",
  "s3://bucket/a b.jpg",
  "HTTPS://host/a.jpg",
  0,
  -1,
  1.5,
  1e6,
  1e6 + 1,
  null,
  true,
  [],
  {},
];

/** Fields that some schemas allow only with or without others. */
const EDGE_FIELDS: [string, unknown][] = [
  ["empty", true],
  ["empty", false],
  ["image_id", "1"],
  ["external_id", "e-1"],
  ["width", 10],
  ["height", 10],
  ["width", null],
  ["labels", []],
  ["shapes", []],
  ["zz_unknown", 1],
];

/**
 * `value` changed in one place: a field replaced by an edge value, dropped or added, an array
 * item duplicated, dropped or one added, or the whole body emptied. Whether the result is valid
 * is Ajv's to say.
 */
export function mutate(value: unknown, rand: () => number): { value: unknown; how: string } | null {
  const copy = structuredClone(value);
  const all = paths(copy);
  const at = all[Math.floor(rand() * all.length)];
  const name = ["body", ...at].join(".");
  // deno-lint-ignore no-explicit-any
  const get = (p: Path): any => p.reduce((v: any, k) => v[k], copy);
  const target = get(at);
  const kind = Math.floor(rand() * 5);
  if (kind === 0 && at.length === 0) return { value: {}, how: "body = {}" };
  if (kind === 1 && target && typeof target === "object" && !Array.isArray(target)) {
    const [key, v] = EDGE_FIELDS[Math.floor(rand() * EDGE_FIELDS.length)];
    target[key] = structuredClone(v);
    return { value: copy, how: `${name}.${key} = ${JSON.stringify(v)}` };
  }
  if (kind === 2 && Array.isArray(target)) {
    const how = Math.floor(rand() * 3);
    if (how === 0 && target.length) target.push(structuredClone(target[0]));
    else if (how === 1 && target.length) target.pop();
    else target.push(typeof target[0] === "number" ? 1 : structuredClone(target[0] ?? 1));
    return { value: copy, how: `${name} = ${JSON.stringify(target).slice(0, 80)}` };
  }
  if (at.length === 0) return null;
  const parent = get(at.slice(0, -1));
  const key = at[at.length - 1];
  if (kind === 3 && !Array.isArray(parent)) {
    delete parent[key];
    return { value: copy, how: `dropped ${name}` };
  }
  const edge = EDGE_VALUES[Math.floor(rand() * EDGE_VALUES.length)];
  parent[key] = structuredClone(edge);
  return { value: copy, how: `${name} = ${JSON.stringify(edge)}` };
}
