/**
 * Root in a clone under /root (mode 700), as in containers and CI shells: the embedded
 * PostgreSQL runs as user `postgres`, which cannot enter it, so lib/runtime/embedded_pg.ts keeps
 * the binaries and the data in ROOT_STATE_DIR. Every command a newcomer runs first must work
 * there: `deno task dev`, `db:status`, `user:create` and `deno task test`.
 */
import assert from "node:assert/strict";
import { ROOT_STATE_DIR } from "../lib/runtime/embedded_pg.ts";
import { baseEnv, readLines, ROOT_DIR } from "../testkit/process.ts";

const decoder = new TextDecoder();

/** This checkout's files, node_modules included (hard links where possible), into `to`. */
async function copyCheckout(to: string): Promise<void> {
  for await (const entry of Deno.readDir(ROOT_DIR)) {
    if ([".git", ".data", "dist"].includes(entry.name)) continue;
    const from = `${ROOT_DIR}/${entry.name}`;
    let out = await new Deno.Command("cp", { args: ["-al", from, to], stderr: "piped" }).output();
    if (!out.success) {
      // Another file system: copy.
      await Deno.remove(`${to}/${entry.name}`, { recursive: true }).catch(() => {});
      out = await new Deno.Command("cp", { args: ["-a", from, to], stderr: "piped" }).output();
    }
    assert.ok(out.success, decoder.decode(out.stderr));
  }
}

async function task(
  cwd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", ...args],
    cwd,
    clearEnv: true,
    env: { ...baseEnv(), ...env },
    stdin: "null",
    signal: AbortSignal.timeout(180_000),
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/**
 * As root, one test in a copy of this checkout under /root (mode 700), removed afterwards with
 * the data its embedded PostgreSQL kept in ROOT_STATE_DIR. The copy of the binaries there is
 * shared by every clone on the machine, and by the other test files running now: it is made if
 * missing, never removed here.
 */
function withClone(name: string, fn: (clone: string) => Promise<void>): void {
  Deno.test({
    name: `as root in a clone under /root (mode 700): ${name}`,
    ignore: Deno.uid() !== 0,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const clone = await Deno.makeTempDir({ dir: "/root", prefix: "annotation-clone-" });
      await Deno.chmod(clone, 0o700);
      try {
        await copyCheckout(clone);
        await fn(clone);
      } finally {
        const kept = await Deno.realPath(`${clone}/.data/postgres`).catch(() => undefined);
        await Deno.remove(clone, { recursive: true }).catch(() => {});
        if (kept?.startsWith(`${ROOT_STATE_DIR}/`)) {
          await Deno.remove(kept, { recursive: true }).catch(() => {});
        }
      }
    },
  });
}

/** `deno task db:migrate` in the clone: the embedded PostgreSQL's database, migrated. */
async function migrated(clone: string): Promise<void> {
  const res = await task(clone, ["db:migrate"]);
  assert.equal(res.code, 0, res.stdout + res.stderr);
}

withClone("deno task dev: listens, with a dev-admin key that works", async (clone) => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "dev"],
    cwd: clone,
    clearEnv: true,
    env: { ...baseEnv(), HOST: "127.0.0.1", PORT: "0" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const done = Promise.all([readLines(child.stdout, lines), readLines(child.stderr, lines)]);
  let exited = false;
  child.status.then(() => exited = true);
  const deadline = Date.now() + 120_000;
  const find = (msg: string) =>
    lines.map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return undefined;
      }
    }).find((l) => l?.msg === msg);
  // The dev-admin banner comes once the server listens: wait for both.
  const banner = () => /\(shown once\):\s+(ak_\S+)/.exec(lines.join("\n"))?.[1];
  while (!(find("listening") && banner()) && !exited && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  try {
    const listening = find("listening");
    assert.ok(listening, lines.join("\n"));
    const key = banner();
    assert.ok(key, lines.join("\n"));
    const res = await fetch(
      `${listening.url.replace("localhost", "127.0.0.1")}/api/v1/auth/token`,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ api_key: key }),
      },
    );
    assert.equal(res.status, 200);
    await res.body?.cancel();
    assert.doesNotMatch(lines.join("\n"), /EPERM|Permission denied/);
    const kept = await Deno.realPath(`${clone}/.data/postgres`);
    assert.ok(kept.startsWith(`${ROOT_STATE_DIR}/data-`), kept);
    const copies = (await Array.fromAsync(Deno.readDir(ROOT_STATE_DIR)))
      .filter((e) => e.name.startsWith("postgres-"));
    assert.equal(copies.length, 1, "the binaries were copied out of /root, once");
  } finally {
    if (!exited) child.kill("SIGTERM");
    const status = await child.status;
    await done;
    assert.equal(status.code, 0, lines.join("\n"));
  }
});

withClone("deno task db:status: the database db:migrate made, nothing pending", async (clone) => {
  await migrated(clone);
  const res = await task(clone, ["db:status"]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /^Pending: 0$/m);
});

withClone("deno task user:create: a key on stdout", async (clone) => {
  await migrated(clone);
  const res = await task(clone, ["user:create", "alice", "annotator"]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout.trim(), /^ak_\S+$/);
});

withClone("deno task test: a test file against a throwaway cluster", async (clone) => {
  // A file of database tests with no timing in it: the machine may be loaded.
  const res = await task(clone, ["test", "tests/datasets_test.ts"]);
  const output = res.stdout + res.stderr;
  assert.equal(res.code, 0, output);
  assert.match(output, /\bok \| \d+ passed .*\| 0 failed/);
  const leftovers = (await Array.fromAsync(Deno.readDir(`${clone}/.data`)))
    .filter((e) => e.name.startsWith("test-postgres-"));
  assert.deepEqual(leftovers, [], "the throwaway cluster is gone");
});
