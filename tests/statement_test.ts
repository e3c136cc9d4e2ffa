/** lib/db/statement.ts: named parameters in SQL files become `$n`, and nothing else does. */
import assert from "node:assert/strict";
import { bind, compile, inlineStatement } from "../lib/db/statement.ts";

Deno.test("statement: :name becomes $n in order of first use, repeats share a number", () => {
  const { text, params } = compile("SELECT :b::int + :a::int WHERE x = :b");
  assert.equal(text, "SELECT $1::int + $2::int WHERE x = $1");
  assert.deepEqual(params, ["b", "a"]);
});

Deno.test("statement: casts, slices, strings, identifiers, comments and bodies are not parameters", () => {
  const source = [
    "SELECT a::text, arr[1:cardinality(arr)], b[lo:hi], f(x):: int,",
    "  ':not', E'\\':not', \"col:not\", $$ :not $$, $tag$ :not $tag$",
    "-- :not in a comment",
    "/* :not /* nested :not */ :not */",
    "FROM t WHERE c = :yes",
  ].join("\n");
  const { text, params } = compile(source);
  assert.deepEqual(params, ["yes"]);
  assert.equal(text, source.replace(":yes", "$1"));
});

Deno.test("statement: a positional $n in a file is refused", () => {
  assert.throws(() => compile("SELECT $1::int", "x/y"), /x\/y\.sql: a positional parameter/);
});

Deno.test("statement: a call without a value for a name fails before it is sent", () => {
  const s = inlineStatement<{ a: number; b: number }>("SELECT :a::int, :b::int");
  assert.deepEqual(bind(s, { a: 1, b: 2 }), [1, 2]);
  assert.throws(() => bind(s, { a: 1 } as { a: number; b: number }), /no value for :b/);
});

Deno.test("statement: every file in sql/ compiles and names its parameters", async () => {
  for await (const dir of Deno.readDir("sql")) {
    if (!dir.isDirectory) continue;
    for await (const f of Deno.readDir(`sql/${dir.name}`)) {
      if (!f.name.endsWith(".sql")) continue;
      const source = await Deno.readTextFile(`sql/${dir.name}/${f.name}`);
      assert.match(source, /^-- name: [A-Z]\w+ :(one|many|exec|execrows)\n/, f.name);
      const { text, params } = compile(source, `${dir.name}/${f.name}`);
      for (const p of params) assert.match(p, /^[a-z][a-z0-9_]*$/, `${f.name}: :${p}`);
      const numbers = new Set(text.match(/\$\d+/g));
      assert.equal(numbers.size, params.length, `${f.name}: every name is one $n`);
    }
  }
});
