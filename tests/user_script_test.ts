/** `deno task user:create`, run as a real subprocess against the test's own database. */
import assert from "node:assert/strict";
import { assertError, createEmptyDb, withApp } from "./harness.ts";

const SCRIPT = new URL("../scripts/user.ts", import.meta.url).pathname;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function userCreate(databaseUrl: string, ...args: string[]): Promise<Run> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", SCRIPT, ...args],
    // APP_ENV=test: the script must not fall back to the embedded development database.
    env: { DATABASE_URL: databaseUrl, APP_ENV: "test" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const KEY_LINE = /^ak_[A-Za-z0-9_-]{43}\n$/;

withApp("user:create: prints only the key on stdout, and the key gets a token", async (app) => {
  const run = await userCreate(app.url, "labeller-1", "annotator");
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, KEY_LINE);
  assert.match(run.stderr, /Created annotator "labeller-1"/);

  const token = await app.anon("POST", "/api/v1/auth/token", { api_key: run.stdout.trim() });
  assert.equal(token.status, 200, JSON.stringify(token.body));
  const me = await app.client(token.body.access_token)("GET", "/api/v1/me");
  assert.equal(me.status, 200);
  assert.equal(me.body.name, "labeller-1");
  assert.equal(me.body.role, "annotator");
});

withApp("user:create: every role works; the role decides what the key may do", async (app) => {
  await app.req("POST", "/api/v1/users", { name: "labeller-1", role: "annotator" });
  const [admin, machine] = await Promise.all([
    userCreate(app.url, "ops", "admin"),
    userCreate(app.url, "model-v1", "machine"),
  ]);
  assert.equal(admin.code, 0, admin.stderr);
  assert.equal(machine.code, 0, machine.stderr);
  const tokenOf = async (key: string) =>
    (await app.anon("POST", "/api/v1/auth/token", { api_key: key.trim() })).body
      .access_token as string;
  const list = await app.client(await tokenOf(admin.stdout))("GET", "/api/v1/users");
  assert.equal(list.status, 200);
  const names = list.body.items.map((u: { name: string }) => u.name);
  for (const n of ["labeller-1", "ops", "model-v1"]) assert.ok(names.includes(n), n);
  const denied = await app.client(await tokenOf(machine.stdout))("GET", "/api/v1/users");
  assertError(denied, 403, "forbidden");
});

withApp("user:create: a taken name is exit 1 with a readable message, and no key", async (app) => {
  await app.req("POST", "/api/v1/users", { name: "labeller-1", role: "annotator" });
  const run = await userCreate(app.url, "labeller-1", "machine");
  assert.equal(run.code, 1);
  assert.equal(run.stdout, "");
  assert.match(run.stderr, /a user named "labeller-1" already exists/);
  const users = await app.req("GET", "/api/v1/users");
  const same = users.body.items.filter((u: { name: string }) => u.name === "labeller-1");
  assert.equal(same.length, 1);
  assert.equal(same[0].role, "annotator", "the existing user is untouched");
});

withApp("user:create: --dataset makes the user a member of each dataset it names", async (app) => {
  const ds = await Promise.all(
    ["a", "b"].map(async (n) =>
      (await app.req("POST", "/api/v1/datasets", { name: `script-${n}`, labels: ["x"] })).body
        .id as string
    ),
  );
  const run = await userCreate(
    app.url,
    "labeller-2",
    "annotator",
    "--dataset",
    ds[0],
    `--dataset=${ds[1]}`,
  );
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, new RegExp(`a member of datasets ${ds[0]}, ${ds[1]}`));
  const token = await app.anon("POST", "/api/v1/auth/token", { api_key: run.stdout.trim() });
  const list = await app.client(token.body.access_token)("GET", "/api/v1/datasets");
  // Created at once, so either may have the lower id; the list is in id order.
  const byId = [...ds].sort((a, b) => Number(a) - Number(b));
  assert.deepEqual(list.body.items.map((d: { id: string }) => d.id), byId);
  for (const id of ds) {
    const members = await app.req("GET", `/api/v1/datasets/${id}/members`);
    assert.deepEqual(members.body.items.map((m: { name: string }) => m.name), ["labeller-2"]);
  }
});

withApp("user:create: an unknown --dataset is exit 1, and creates no user", async (app) => {
  const run = await userCreate(app.url, "labeller-3", "annotator", "--dataset", "987654");
  assert.equal(run.code, 1);
  assert.equal(run.stdout, "");
  assert.match(run.stderr, /no dataset 987654: nothing was created/);
  const users = await app.req("GET", "/api/v1/users");
  assert.ok(!users.body.items.some((u: { name: string }) => u.name === "labeller-3"));
});

withApp("user:create: wrong arguments are exit 2 with the usage", async (app) => {
  const cases: [string[], RegExp][] = [
    [[], /give a name and a role/],
    [["only-a-name"], /give a name and a role/],
    [["a", "annotator", "extra"], /expected 2 arguments, got 3/],
    [
      ["someone", "superuser"],
      /unknown role "superuser": use one of admin, reviewer, annotator/,
    ],
    [["   ", "admin"], /the name must not be blank/],
    [["x".repeat(201), "admin"], /at most 200 characters/],
    [["a", "annotator", "--dataset"], /--dataset needs a dataset id/],
    [["a", "annotator", "--dataset", "pets"], /not a dataset id: "pets"/],
    [["a", "annotator", "--datasets", "1"], /unknown option --datasets/],
  ];
  const runs = await Promise.all(cases.map(([args]) => userCreate(app.url, ...args)));
  runs.forEach((run, i) => {
    const [args, message] = cases[i];
    assert.equal(run.code, 2, `${JSON.stringify(args)}: ${run.stderr}`);
    assert.equal(run.stdout, "");
    assert.match(run.stderr, message);
    assert.match(run.stderr, /usage: deno task user:create <name> <role>/);
  });
});

Deno.test("user:create on an unmigrated database says to migrate", async () => {
  const empty = await createEmptyDb();
  try {
    const run = await userCreate(empty.url, "early", "admin");
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "");
    assert.match(run.stderr, /run `deno task db:migrate`/);
  } finally {
    await empty.close();
  }
});
