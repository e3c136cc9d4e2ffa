/**
 * The README's five-minute tour, run as a reader runs it: its bash blocks in README order, in one
 * shell, in an empty directory, against a freshly started development server (`main.ts` with
 * `deno task dev`'s flags and APP_ENV=development, on an empty database: it migrates and prints
 * the `dev-admin` key). Only the server's address and that key are filled in. The database is one
 * of the test server's instead of the embedded PostgreSQL, which tests/dev_mode_test.ts covers.
 *
 * Needs bash, curl and jq (CI installs them); without them these tests are reported as ignored.
 */
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { TOKEN_AUDIENCE, TOKEN_ISSUER } from "../lib/auth/tokens.ts";
import { createEmptyDb } from "./harness.ts";
import { baseEnv, devTaskFlags, ROOT_DIR, spawnProcess } from "../testkit/process.ts";

const README = Deno.readTextFileSync(`${ROOT_DIR}/README.md`);

/** What the first block says, replaced by the spawned server's address and key. */
const README_ORIGIN = "http://localhost:8000";
const README_KEY_LINE = /^ADMIN_KEY=ak_\.\.\.(?= )/m;

/** The tour's shell blocks, in README order. */
function tourBlocks(): string[] {
  const start = README.indexOf("\n## A five-minute tour\n");
  assert.ok(start >= 0, "the README has a five-minute tour");
  const end = README.indexOf("\n## ", start + 1);
  const section = README.slice(start, end < 0 ? undefined : end);
  const blocks = [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
  assert.ok(blocks.length >= 4, `the tour has its steps (${blocks.length} blocks)`);
  return blocks;
}

/** The first shell block of the README's section `heading` (a `## ` line). */
function sectionBlock(heading: string): string {
  const start = README.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `the README has a section ${heading}`);
  const end = README.indexOf("\n## ", start + 1);
  const block = /^```sh\n([\s\S]*?)^```$/m.exec(README.slice(start, end < 0 ? undefined : end));
  assert.ok(block, `the section ${heading} has a shell block`);
  return block[1];
}

/** The block that `marker` identifies (the claims loop, the feed loop). */
function blockWith(blocks: string[], marker: string): number {
  const found = blocks.flatMap((b, i) => b.includes(marker) ? [i] : []);
  assert.equal(found.length, 1, `one tour block has ${marker}`);
  return found[0];
}

function installed(program: string): boolean {
  try {
    return new Deno.Command("sh", { args: ["-c", `command -v ${program}`], stdout: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

const TOOLS = ["bash", "curl", "jq"];
const ignore = !TOOLS.every(installed);

const KEY_BANNER = /Created development admin "dev-admin"\. Its API key \(shown once\):\s+(ak_\S+)/;

interface DevServer {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** The dev-admin key the server printed. */
  adminKey: string;
  /** The request log lines so far. */
  requests(): { route: string; status: number }[];
  output(): string;
  stop(): Promise<void>;
}

/** A development server on an empty database, as `deno task dev` starts on a fresh clone. */
async function startDevServer(env: Record<string, string> = {}): Promise<DevServer> {
  const database = await createEmptyDb();
  const server = spawnProcess({
    APP_ENV: "development",
    DATABASE_URL: database.url,
    HOST: "127.0.0.1",
    PORT: "0",
    ...env,
  }, { permissions: devTaskFlags() });
  const { lines } = server;
  let exitCode: number | undefined;
  server.exited.then((c) => exitCode = c);
  const logs = () => server.logs();
  const stop = async () => {
    await server.stop();
    await database.close();
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    const listening = logs().find((l) => l.msg === "listening");
    const key = KEY_BANNER.exec(lines.join("\n"))?.[1];
    if (listening && key) {
      return {
        url: String(listening.url).replace("localhost", "127.0.0.1"),
        adminKey: key,
        requests: () =>
          logs().filter((l) => l.msg === "request").map((l) => ({
            route: String(l.route),
            status: Number(l.status),
          })),
        output: () => lines.join("\n"),
        stop,
      };
    }
    if (exitCode !== undefined || Date.now() > deadline) {
      await stop();
      throw new Error(`the dev server did not start (and print a key):\n${lines.join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The tour's first block with this server's address and key in place of the README's. */
function localise(block: string, server: DevServer): string {
  assert.ok(block.includes(README_ORIGIN), `the first block sets ${README_ORIGIN}`);
  assert.match(block, README_KEY_LINE, "the first block sets ADMIN_KEY=ak_...");
  return block.replaceAll(README_ORIGIN, server.url)
    .replace(README_KEY_LINE, `ADMIN_KEY=${server.adminKey}`);
}

/**
 * Runs `script` in bash in `dir` as a reader's terminal would run the pasted blocks, except that a
 * failing block ends the run (`set -e` around the blocks' own subshells).
 */
async function bash(dir: string, script: string): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command("bash", {
    args: ["-c", `set -e\n${script}`],
    cwd: dir,
    clearEnv: true,
    env: baseEnv(),
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(180_000),
  }).output();
  const text = new TextDecoder();
  return { code: out.code, output: text.decode(out.stdout) + text.decode(out.stderr) };
}

/** A call as the dev-admin. */
function asAdmin(server: DevServer, method: string, path: string, body?: unknown) {
  return asKey(server, server.adminKey, method, path, body);
}

/** A call as the user whose API key is `apiKey`. */
async function asKey(
  server: DevServer,
  apiKey: string,
  method: string,
  path: string,
  body?: unknown,
) {
  const tokenRes = await fetch(`${server.url}/api/v1/auth/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ api_key: apiKey }),
  });
  const { access_token } = await tokenRes.json();
  const res = await fetch(`${server.url}/api/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${access_token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** The tour's results: every image annotated from its prediction, the feed and exports complete. */
async function assertTourDone(server: DevServer, dir: string): Promise<{ dataset: string }> {
  const env = Object.fromEntries(
    Deno.readTextFileSync(`${dir}/tour.env`).trim().split("\n").map((l) => l.split("=", 2)),
  );
  const dataset = env.DATASET;
  assert.match(dataset, /^\d+$/, "tour.env names the dataset");
  const stats = (await asAdmin(server, "GET", `/datasets/${dataset}/stats`)).body;
  assert.ok(stats.images > 0, "the tour registered images");
  assert.equal(stats.done, stats.images, "every image is done");
  assert.equal(stats.human_annotations, stats.images, "one human annotation each");
  assert.equal(stats.active_claims, 0);

  const feed = Deno.readTextFileSync(`${dir}/human-annotations.jsonl`).trim().split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(feed.length, stats.images, "the feed delivered every human annotation");
  assert.equal(new Set(feed.map((a) => a.image_id)).size, stats.images, "once each");
  for (const a of feed) {
    assert.equal(a.source, "human");
    // Started from the model's prediction: never the empty annotation of a loop without one.
    assert.ok(a.shapes.length > 0, `annotation ${a.id} has shapes`);
  }

  const coco = JSON.parse(Deno.readTextFileSync(`${dir}/pets.coco.json`));
  assert.equal(coco.images.length, stats.images);
  assert.equal(coco.annotations.length, feed.flatMap((a) => a.shapes).length);
  const jsonl = Deno.readTextFileSync(`${dir}/pets.jsonl`).trim().split("\n");
  assert.equal(jsonl.length, stats.images);
  await assertCursorValid(server, dir, dataset);
  return { dataset };
}

/** cursor.txt holds a cursor the server accepts, and nothing is left after it. */
async function assertCursorValid(server: DevServer, dir: string, dataset: string) {
  const cursor = Deno.readTextFileSync(`${dir}/cursor.txt`).trim();
  assert.ok(cursor && cursor !== "null", `cursor.txt holds a cursor: "${cursor}"`);
  const after = encodeURIComponent(cursor);
  const page = await asAdmin(
    server,
    "GET",
    `/datasets/${dataset}/annotations?source=human&after=${after}`,
  );
  assert.equal(page.status, 200, JSON.stringify(page.body));
  assert.deepEqual(page.body.items, [], "the feed had caught up");
}

Deno.test({
  name: "the README's tour runs as written, in order, on a fresh development server",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const blocks = tourBlocks();
    const server = await startDevServer();
    const dir = await Deno.makeTempDir({ prefix: "readme-tour-" });
    try {
      const script = [localise(blocks[0], server), ...blocks.slice(1)].join("\n");
      const run = await bash(dir, script);
      assert.equal(run.code, 0, `the tour failed:\n${run.output}\n--- server:\n${server.output()}`);
      await assertTourDone(server, dir);
    } finally {
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "the tour's loops exchange the key again when their token has expired",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const secret = "readme-tour-jwt-secret-0123456789-abcdef";
    const now = Math.floor(Date.now() / 1000);
    // A token of this server's, signed with its secret, that expired a minute ago.
    const expired = await new SignJWT({ role: "annotator", name: "alice" })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject("1")
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setIssuedAt(now - 3600)
      .setExpirationTime(now - 60)
      .sign(new TextEncoder().encode(secret));
    const blocks = tourBlocks();
    const claims = blockWith(blocks, "/claims");
    const feed = blockWith(blocks, "next_cursor");
    const server = await startDevServer({ AUTH_JWT_SECRET: secret });
    const dir = await Deno.makeTempDir({ prefix: "readme-tour-" });
    try {
      // token() hands the claims loop and the feed loop the expired token first.
      const expireFirst = (mark: string) => `EXPIRE_MARK=${mark}\n`;
      const script = [
        localise(blocks[0], server),
        `EXPIRED='${expired}'`,
        `eval "real_$(declare -f token)"`,
        `token() {
          if [ -n "\${EXPIRE_MARK:-}" ] && [ ! -e "$EXPIRE_MARK" ]; then
            : > "$EXPIRE_MARK"; echo "$EXPIRED"
          else real_token "$@"; fi
        }`,
        ...blocks.slice(1).map((b, k) =>
          (k + 1 === claims
            ? expireFirst("claims-expired")
            : k + 1 === feed
            ? expireFirst("feed-expired")
            : "EXPIRE_MARK=\n") + b
        ),
      ].join("\n");
      const run = await bash(dir, script);
      assert.equal(run.code, 0, `the tour failed:\n${run.output}\n--- server:\n${server.output()}`);
      for (const mark of ["claims-expired", "feed-expired"]) {
        assert.ok((await Deno.stat(`${dir}/${mark}`)).isFile, `${mark}: the token was handed out`);
      }
      const refused = server.requests().filter((r) => r.status === 401).map((r) => r.route);
      assert.deepEqual(refused.sort(), [
        "/api/v1/datasets/:datasetId/annotations",
        "/api/v1/datasets/:datasetId/claims",
      ]);
      const { dataset } = await assertTourDone(server, dir);

      // A later run of the feed step brings what is new, after the kept cursor.
      const delivered = Deno.readTextFileSync(`${dir}/human-annotations.jsonl`).trim().split("\n");
      const correction = await asAdmin(
        server,
        "POST",
        `/images/${JSON.parse(delivered[0]).image_id}/annotations`,
        {
          labels: ["dog"],
        },
      );
      assert.equal(correction.status, 201, JSON.stringify(correction.body));
      const again = await bash(dir, [localise(blocks[0], server), blocks[feed]].join("\n"));
      assert.equal(again.code, 0, again.output);
      const now2 = Deno.readTextFileSync(`${dir}/human-annotations.jsonl`).trim().split("\n");
      assert.deepEqual(now2.slice(0, delivered.length), delivered, "earlier rows kept");
      // The correction, and the annotation it superseded, delivered again with its new status.
      const corrected = JSON.parse(delivered[0]).id;
      assert.deepEqual(
        now2.slice(delivered.length).map((l) => [JSON.parse(l).id, JSON.parse(l).status]).sort(),
        [[corrected, "superseded"], [correction.body.id, "submitted"]].sort(),
      );
      await assertCursorValid(server, dir, dataset);
    } finally {
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a tour step that fails stops there and shows the server's error",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const blocks = tourBlocks();
    const server = await startDevServer();
    const dir = await Deno.makeTempDir({ prefix: "readme-tour-" });
    try {
      const wrongKey = localise(blocks[0], server).replace(
        /^ADMIN_KEY=\S+/m,
        "ADMIN_KEY=ak_not_the_key_deno_task_dev_printed",
      );
      const run = await bash(dir, [wrongKey, ...blocks.slice(1)].join("\n"));
      assert.notEqual(run.code, 0, run.output);
      assert.match(run.output, /"code":"invalid_api_key"/, run.output);
      // Nothing after the failed step ran.
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), []);
      assert.deepEqual(
        server.requests().map((r) => `${r.route} ${r.status}`),
        ["/api/v1/auth/token 401"],
      );
    } finally {
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "the README's review block, after the tour, accepts the image waiting for review",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const blocks = tourBlocks();
    const server = await startDevServer();
    const dir = await Deno.makeTempDir({ prefix: "readme-tour-" });
    try {
      const tour = await bash(dir, [localise(blocks[0], server), ...blocks.slice(1)].join("\n"));
      assert.equal(tour.code, 0, `the tour failed:\n${tour.output}`);
      const env = Object.fromEntries(
        Deno.readTextFileSync(`${dir}/tour.env`).trim().split("\n").map((l) => l.split("=", 2)),
      );
      // Every image completed from now on goes to review; a reviewer member, one new image,
      // annotated by the tour's annotator.
      const dataset = env.DATASET;
      const rate = await asAdmin(server, "PATCH", `/datasets/${dataset}`, { review_rate: 1 });
      assert.equal(rate.status, 200, JSON.stringify(rate.body));
      const reviewer = await asAdmin(server, "POST", "/users", { name: "rob", role: "reviewer" });
      assert.equal(reviewer.status, 201, JSON.stringify(reviewer.body));
      const member = await asAdmin(
        server,
        "PUT",
        `/datasets/${dataset}/members/${reviewer.body.user.id}`,
      );
      assert.equal(member.status, 204);
      const added = await asKey(server, env.MODEL_KEY, "POST", `/datasets/${dataset}/images`, {
        images: [{ uri: "s3://my-bucket/pets/late.jpg", external_id: "late" }],
      });
      assert.equal(added.status, 200, JSON.stringify(added.body));
      const claim = await asKey(server, env.ANNOTATOR_KEY, "POST", `/datasets/${dataset}/claims`);
      assert.equal(claim.status, 201, JSON.stringify(claim.body));
      const image = claim.body.claim.image_id;
      const submit = await asKey(
        server,
        env.ANNOTATOR_KEY,
        "POST",
        `/images/${image}/annotations`,
        {
          claim_id: claim.body.claim.id,
          labels: ["cat"],
          shapes: [],
        },
      );
      assert.equal(submit.status, 201, JSON.stringify(submit.body));
      assert.equal((await asAdmin(server, "GET", `/images/${image}`)).body.status, "in_review");

      const script = [
        localise(blocks[0], server),
        ". ./tour.env",
        `REVIEWER_KEY=${reviewer.body.api_key}`,
        "set -e",
        sectionBlock("Review"),
      ].join("\n");
      const run = await bash(dir, script);
      assert.equal(run.code, 0, `the review block failed:\n${run.output}`);
      assert.equal((await asAdmin(server, "GET", `/images/${image}`)).body.status, "accepted");
    } finally {
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
