/**
 * SQL statements as files: `sql/<resource>/<verb_noun>.sql`, one statement each, read once when
 * the module that wraps it is imported (a missing file fails at start-up).
 *
 * A file names its parameters `:name` (PgTyped's form; `::type` casts and `a[1:n]` slices are
 * not parameters). The loader rewrites them to `$1, $2, …` in order of first use, outside string
 * literals, quoted identifiers, comments and dollar-quoted bodies, and a call passes an object with
 * one value per name: no positional arrays on the TypeScript side. Each file starts with
 * `-- name: VerbNoun :one | :many | :exec`, which says how many rows come back.
 */

const SQL_ROOT = new URL("../../sql/", import.meta.url);

/** A loaded statement: `P` its parameters by name, `R` its row. */
export interface Statement<P, R> {
  /** The file, relative to sql/ and without `.sql`. */
  readonly file: string;
  /** The text as PostgreSQL receives it: `$n` placeholders. */
  readonly text: string;
  /** Parameter names, in `$n` order. */
  readonly params: readonly (keyof P & string)[];
  /** Phantom: the row type, for inference only. */
  readonly row?: R;
}

/** Loads `sql/<file>.sql`. */
export function statement<P extends object, R = never>(file: string): Statement<P, R> {
  const source = Deno.readTextFileSync(new URL(`${file}.sql`, SQL_ROOT));
  const { text, params } = compile(source, file);
  return { file, text, params: params as (keyof P & string)[] };
}

/** A statement from text, for tests and tools (the server's statements are files in sql/). */
export function inlineStatement<P extends object, R = never>(text: string): Statement<P, R> {
  const { text: compiled, params } = compile(text);
  return { file: "(inline)", text: compiled, params: params as (keyof P & string)[] };
}

/** The values of `params` in the statement's `$n` order; a missing name is a programming error. */
export function bind<P extends object>(s: Statement<P, unknown>, params: P): unknown[] {
  return s.params.map((name) => {
    if (!(name in params)) throw new Error(`sql/${s.file}.sql: no value for :${name}`);
    return (params as Record<string, unknown>)[name];
  });
}

/**
 * `source` with `:name` parameters replaced by `$n`, and the names in order. Skips what is not
 * SQL code: '…' and E'…' literals, "…" identifiers, -- and nested /* *\/ comments, $tag$ bodies.
 */
export function compile(source: string, file = "(inline)"): { text: string; params: string[] } {
  const params: string[] = [];
  // Pieces joined once at the end: appending them one by one would leave a deep rope
  // (ConsString) that V8 walks again each time postgres.js hashes the text.
  const out: string[] = [];
  let i = 0;
  const n = source.length;
  while (i < n) {
    const c = source[i];
    const next = source[i + 1];
    let end = i + 1;
    if (c === "-" && next === "-") {
      end = source.indexOf("\n", i);
      if (end < 0) end = n;
    } else if (c === "/" && next === "*") {
      let depth = 1;
      end = i + 2;
      while (end < n && depth > 0) {
        if (source.startsWith("/*", end)) depth++, end += 2;
        else if (source.startsWith("*/", end)) depth--, end += 2;
        else end++;
      }
    } else if (c === "'" || c === '"') {
      // A doubled quote is an escaped one; E'…' strings also take backslash escapes.
      const escapes = c === "'" && /[eE]/.test(source[i - 1] ?? "");
      end = i + 1;
      while (end < n) {
        if (escapes && source[end] === "\\") end += 2;
        else if (source[end] === c && source[end + 1] === c) end += 2;
        else if (source[end] === c) break;
        else end++;
      }
      end++;
    } else if (c === "$" && /[0-9]/.test(next ?? "")) {
      throw new Error(`sql/${file}.sql: a positional parameter (${c}${next}…); name it (:name)`);
    } else if (c === "$" && /[A-Za-z_$]/.test(next ?? "")) {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(source.slice(i));
      if (tag) {
        const close = source.indexOf(tag[0], i + tag[0].length);
        end = close < 0 ? n : close + tag[0].length;
      }
    } else if (c === ":" && next === ":") {
      end = i + 2;
    } else if (c === ":" && /[A-Za-z_]/.test(next ?? "") && !/[\w\])"]/.test(source[i - 1] ?? "")) {
      // Not after a word, `]` or `)`: `a[1:n]` is an array slice, not a parameter.
      const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(source.slice(i + 1))![0];
      let k = params.indexOf(name);
      if (k < 0) k = params.push(name) - 1;
      out.push(`$${k + 1}`);
      i += 1 + name.length;
      continue;
    }
    out.push(source.slice(i, end));
    i = end;
  }
  return { text: out.join(""), params };
}
