/**
 * What the server under test supports, read from its OpenAPI document (/api/openapi.json), for the
 * sections that measure a feature only some versions have.
 */

// deno-lint-ignore no-explicit-any
type Json = any;

/** `#/components/schemas/X` resolved against the document; anything else as it is. */
function resolve(spec: Json, schema: Json, depth = 0): Json {
  if (depth > 20 || !schema || typeof schema !== "object") return schema;
  const ref = schema.$ref;
  if (typeof ref !== "string") return schema;
  const target = ref.replace(/^#\//, "").split("/")
    .reduce((at: Json, key: string) => at?.[key.replaceAll("~1", "/").replaceAll("~0", "~")], spec);
  return resolve(spec, target, depth + 1);
}

/** The property names a schema may have, through $ref, allOf, anyOf and oneOf. */
function propertyNames(spec: Json, schema: Json, depth = 0): Set<string> {
  const s = resolve(spec, schema);
  const names = new Set<string>(Object.keys(s?.properties ?? {}));
  if (depth > 20 || !s) return names;
  for (const key of ["allOf", "anyOf", "oneOf"]) {
    for (const part of s[key] ?? []) {
      for (const n of propertyNames(spec, part, depth + 1)) names.add(n);
    }
  }
  return names;
}

/** The operation with this operationId: its path, method and definition. */
function findOperation(
  spec: Json,
  operationId: string,
): { path: string; method: string; op: Json } | undefined {
  for (const [path, item] of Object.entries<Json>(spec?.paths ?? {})) {
    for (const [method, op] of Object.entries<Json>(item ?? {})) {
      if (op && typeof op === "object" && op.operationId === operationId) {
        return { path, method, op };
      }
    }
  }
  return undefined;
}

export interface FusedSupport {
  /** createAnnotation takes `next` in its JSON body. */
  supported: boolean;
  /** Why not, or what it is, for the report. */
  note: string;
}

/**
 * Whether the server answers a submit with the next claim: `createAnnotation` with `"next": true`
 * in its body answers `{annotation, next: ClaimedImage | null}` (the annotator page's issue).
 */
export function fusedCycleSupport(spec: Json): FusedSupport {
  const found = findOperation(spec, "createAnnotation");
  if (!found) return { supported: false, note: "no createAnnotation in /api/openapi.json" };
  const body = found.op.requestBody?.content?.["application/json"]?.schema;
  if (!propertyNames(spec, body).has("next")) {
    return {
      supported: false,
      note: "not in this server: createAnnotation takes no `next` (/api/openapi.json)",
    };
  }
  return {
    supported: true,
    note: `${found.method.toUpperCase()} ${found.path} with "next": true`,
  };
}
