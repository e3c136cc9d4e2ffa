/**
 * Dataset membership (issue 24): who sees a dataset, the member endpoints, what removing a member
 * does to its claim, the migration, and the rule's one home in SQL. Every operation against a
 * dataset one may not see is in tests/membership_matrix_test.ts.
 */
import assert from "node:assert/strict";
import { connect } from "../lib/db/pool.ts";
import { dbmate } from "../lib/db/migrate.ts";
import { createHumanAnnotation } from "../sql/annotations/queries.ts";
import { claimNextImage, claimNextImages } from "../sql/claims/queries.ts";
import { getLease, releaseLease, renewLease } from "../sql/leases/queries.ts";
import { makeDataset, noBrowser, servePage } from "./browser.ts";
import {
  assertError,
  createEmptyDb,
  rawExec,
  rawOne,
  type Res,
  rollBackBefore,
  SEES_ALL,
  type TestApp,
  type TestUser,
  withApp,
} from "./harness.ts";

let seq = 0;

/** A dataset (access `members` unless given) with `images` images, and its image ids. */
async function dataset(
  h: TestApp,
  opts: { access?: "members" | "open"; images?: number; k?: number } = {},
): Promise<{ id: string; images: string[] }> {
  const ds = await h.req("POST", "/api/v1/datasets", {
    name: `membership-${++seq}`,
    labels: ["cat"],
    annotations_per_image: opts.k ?? 1,
    ...(opts.access ? { access: opts.access } : {}),
  });
  assert.equal(ds.status, 201, JSON.stringify(ds.body));
  const n = opts.images ?? 2;
  const reg = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
    images: Array.from({ length: n }, (_, i) => ({ uri: `s3://m/${seq}/${i}.jpg`, priority: -i })),
  });
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  return { id: ds.body.id, images: reg.body.images.map((i: { id: string }) => i.id) };
}

const add = (h: TestApp, ds: string, u: TestUser) =>
  h.req("PUT", `/api/v1/datasets/${ds}/members/${u.id}`);
const remove = (h: TestApp, ds: string, u: TestUser) =>
  h.req("DELETE", `/api/v1/datasets/${ds}/members/${u.id}`);

/** The answer with `id` written as `{id}`: an unknown id's answer must read the same. */
const withoutId = (res: Res, id: string) =>
  `${res.status} ${JSON.stringify(res.body).replace(new RegExp(`\\b${id}\\b`, "g"), "{id}")}`;

/** Who sees what: a `members` dataset with one member, an `open` one, and three users. */
interface Visibility {
  h: TestApp;
  member: TestUser;
  outsider: TestUser;
  machine: TestUser;
  closed: { id: string; images: string[] };
  open: { id: string; images: string[] };
}

function withVisibility(name: string, fn: (v: Visibility) => Promise<void>): void {
  withApp(`membership: ${name}`, async (h) => {
    const member = await h.user("annotator");
    const outsider = await h.user("annotator");
    const machine = await h.user("machine");
    const closed = await dataset(h);
    const open = await dataset(h, { access: "open" });
    assert.equal((await add(h, closed.id, member)).status, 204);
    await fn({ h, member, outsider, machine, closed, open });
  });
}

withVisibility(
  "a new dataset is for its members; `open` is for everyone",
  async ({ h, member, outsider, machine, closed, open }) => {
    assert.equal((await h.req("GET", `/api/v1/datasets/${closed.id}`)).body.access, "members");
    assert.equal((await h.req("GET", `/api/v1/datasets/${open.id}`)).body.access, "open");
    const listed = async (u: TestUser) =>
      (await u.req("GET", "/api/v1/datasets")).body.items.map((d: { id: string }) => d.id);
    assert.deepEqual(await listed(member), [closed.id, open.id]);
    assert.deepEqual(await listed(outsider), [open.id], "not listed for a non-member");
    assert.deepEqual(await listed(machine), [open.id]);
    const all = (await h.req("GET", "/api/v1/datasets")).body.items.map((d: { id: string }) =>
      d.id
    );
    assert.ok(all.includes(closed.id) && all.includes(open.id), "an admin sees every dataset");
  },
);

withVisibility(
  "a non-member gets an unknown id's 404, never a 403",
  async ({ member, outsider, closed, open }) => {
    const unknown = "987654321";
    for (const path of ["", "/stats", "/images"]) {
      const theirs = await outsider.req("GET", `/api/v1/datasets/${closed.id}${path}`);
      const none = await outsider.req("GET", `/api/v1/datasets/${unknown}${path}`);
      assertError(theirs, 404, "not_found");
      assert.equal(withoutId(theirs, closed.id), withoutId(none, unknown), path);
    }
    const image = await outsider.req("GET", `/api/v1/images/${closed.images[0]}`);
    const noImage = await outsider.req("GET", `/api/v1/images/${unknown}`);
    assert.equal(withoutId(image, closed.images[0]), withoutId(noImage, unknown));
    assertError(await outsider.req("POST", `/api/v1/datasets/${closed.id}/claims`), 404);
    const ok = await member.req("POST", `/api/v1/datasets/${closed.id}/claims`);
    assert.equal(ok.status, 201, "a member claims");
    assert.equal((await outsider.req("POST", `/api/v1/datasets/${open.id}/claims`)).status, 201);
  },
);

withVisibility(
  "added, a user sees the dataset at once; removed, at once no longer",
  async ({ h, machine, closed }) => {
    assertError(await machine.req("GET", `/api/v1/datasets/${closed.id}/annotations`), 404);
    assert.equal((await add(h, closed.id, machine)).status, 204);
    const feed = await machine.req("GET", `/api/v1/datasets/${closed.id}/annotations`);
    assert.equal(feed.status, 200);
    assert.equal((await remove(h, closed.id, machine)).status, 204);
    assertError(await machine.req("GET", `/api/v1/datasets/${closed.id}/annotations`), 404);
    assertError(
      await machine.req(
        "GET",
        `/api/v1/datasets/${closed.id}/annotations?after=${
          encodeURIComponent(feed.body.next_cursor)
        }`,
      ),
      404,
    );
  },
);

withVisibility(
  "updateDataset changes access; admins see a dataset either way",
  async ({ h, outsider, open }) => {
    const res = await h.req("PATCH", `/api/v1/datasets/${open.id}`, { access: "members" });
    assert.equal(res.status, 200);
    assert.equal(res.body.access, "members");
    assertError(await outsider.req("GET", `/api/v1/datasets/${open.id}`), 404);
    assert.equal((await h.req("GET", `/api/v1/datasets/${open.id}`)).status, 200);
    assertError(await h.req("PATCH", `/api/v1/datasets/${open.id}`, { access: "all" }), 400);
    const back = await h.req("PATCH", `/api/v1/datasets/${open.id}`, { access: "open" });
    assert.equal(back.body.access, "open");
    assert.equal((await outsider.req("GET", `/api/v1/datasets/${open.id}`)).status, 200);
  },
);

withVisibility(
  "registerImages by a non-member names no image: neither new external_ids nor known ones",
  async ({ h, machine, closed }) => {
    const path = `/api/v1/datasets/${closed.id}/images`;
    const known = { uri: "s3://m/known.jpg", external_id: `known-${++seq}` };
    const first = await h.req("POST", path, { images: [known] });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const count = async () =>
      Number(
        (await rawOne<{ n: string }>(
          h.db,
          "SELECT count(*)::text AS n FROM images WHERE dataset_id = $1::bigint",
          [closed.id],
        ))?.n,
      );
    const before = await count();
    // A known external_id takes register_images.sql, a new one insert_new_images.sql: both
    // answer as for a dataset that does not exist, and write nothing.
    for (const images of [[known], [{ uri: "s3://m/new.jpg", external_id: `new-${++seq}` }]]) {
      const res = await machine.req("POST", path, { images });
      assertError(res, 404);
      assert.ok(!JSON.stringify(res.body).includes(first.body.images[0].id), "no id leaked");
    }
    assert.equal(await count(), before);
    assert.equal((await add(h, closed.id, machine)).status, 204);
    const member = await machine.req("POST", path, { images: [known] });
    assert.equal(member.status, 200, JSON.stringify(member.body));
    assert.deepEqual(member.body.images, first.body.images);
  },
);

/** A `members` dataset with no member yet, an annotator and a machine, and its member list. */
interface Roster {
  h: TestApp;
  a: TestUser;
  m: TestUser;
  ds: { id: string; images: string[] };
  members(): Promise<{ user_id: string; name: string; role: string; added_at: string }[]>;
}

function withRoster(name: string, fn: (r: Roster) => Promise<void>): void {
  withApp(`membership: ${name}`, async (h) => {
    const a = await h.user("annotator");
    const m = await h.user("machine");
    const ds = await dataset(h);
    const members = async () =>
      (await h.req("GET", `/api/v1/datasets/${ds.id}/members`)).body.items;
    await fn({ h, a, m, ds, members });
  });
}

withRoster("PUT is idempotent: a second add changes nothing", async ({ h, a, m, ds, members }) => {
  assert.deepEqual(await members(), []);
  assert.equal((await add(h, ds.id, a)).status, 204);
  const first = await members();
  assert.equal((await add(h, ds.id, a)).status, 204);
  assert.deepEqual(await members(), first, "added_at is the first add's");
  assert.equal((await add(h, ds.id, m)).status, 204);
  const list = await members();
  assert.deepEqual(list.map((x) => [x.user_id, x.name, x.role]), [
    [a.id, a.name, "annotator"],
    [m.id, m.name, "machine"],
  ]);
  assert.ok(list.every((x) => !Number.isNaN(Date.parse(x.added_at))));
});

withRoster("DELETE is idempotent", async ({ h, a, m, ds, members }) => {
  assert.equal((await add(h, ds.id, a)).status, 204);
  assert.equal((await add(h, ds.id, m)).status, 204);
  assert.equal((await remove(h, ds.id, m)).status, 204);
  assert.equal((await remove(h, ds.id, m)).status, 204);
  assert.deepEqual((await members()).map((x) => x.user_id), [a.id]);
});

withRoster("an unknown dataset or user is 404, naming which", async ({ h, a, ds }) => {
  for (const method of ["PUT", "DELETE"]) {
    const noDataset = await h.req(method, `/api/v1/datasets/999999/members/${a.id}`);
    assertError(noDataset, 404, "not_found");
    assert.match(noDataset.body.error.message, /dataset 999999/);
    const noUser = await h.req(method, `/api/v1/datasets/${ds.id}/members/999999`);
    assertError(noUser, 404, "not_found");
    assert.match(noUser.body.error.message, /user 999999/);
  }
  assertError(await h.req("GET", "/api/v1/datasets/999999/members"), 404, "not_found");
  assertError(await h.req("PUT", `/api/v1/datasets/${ds.id}/members/x`), 400);
});

withRoster("only admins manage members", async ({ a, m, ds }) => {
  assertError(await a.req("GET", `/api/v1/datasets/${ds.id}/members`), 403, "forbidden");
  assertError(await a.req("PUT", `/api/v1/datasets/${ds.id}/members/${a.id}`), 403);
  assertError(await m.req("DELETE", `/api/v1/datasets/${ds.id}/members/${a.id}`), 403);
});

/**
 * Two members of a one-image dataset: `gone` holds the claim on the image, so `stays` gets none;
 * then `gone` is removed.
 */
interface Revoked {
  h: TestApp;
  gone: TestUser;
  stays: TestUser;
  ds: { id: string; images: string[] };
  claimId: string;
  imageId: string;
}

function withRevoked(name: string, fn: (r: Revoked) => Promise<void>): void {
  withApp(`removing a member: ${name}`, async (h) => {
    const gone = await h.user("annotator");
    const stays = await h.user("annotator");
    // One image: whoever holds it blocks the other.
    const ds = await dataset(h, { images: 1 });
    await add(h, ds.id, gone);
    await add(h, ds.id, stays);
    const claim = await gone.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    assert.equal(claim.status, 201);
    const { id: claimId, image_id: imageId } = claim.body.claim;
    assert.equal((await stays.req("POST", `/api/v1/datasets/${ds.id}/claims`)).status, 204);
    assert.equal((await remove(h, ds.id, gone)).status, 204);
    await fn({ h, gone, stays, ds, claimId, imageId });
  });
}

withRevoked(
  "the image is claimable again at once, and the claim ended as revoked",
  async ({ h, stays, ds, claimId, imageId }) => {
    const next = await stays.req("POST", `/api/v1/datasets/${ds.id}/claims`);
    assert.equal(next.status, 201, JSON.stringify(next.body));
    assert.equal(next.body.claim.image_id, imageId);
    const ended = await rawOne<{ end_reason: string }>(
      h.db,
      "SELECT end_reason FROM claims WHERE id = $1::bigint",
      [claimId],
    );
    assert.equal(ended?.end_reason, "revoked");
  },
);

withRevoked(
  "the removed user's submit, renew and release are an unknown id's",
  async ({ gone, ds, claimId, imageId }) => {
    const submit = await gone.req("POST", `/api/v1/images/${imageId}/annotations`, {
      claim_id: claimId,
      labels: ["cat"],
    });
    assertError(submit, 404, "not_found");
    assertError(await gone.req("POST", `/api/v1/claims/${claimId}/renew`), 404, "not_found");
    assertError(await gone.req("DELETE", `/api/v1/claims/${claimId}`), 404, "not_found");
    assertError(await gone.req("POST", `/api/v1/datasets/${ds.id}/claims`), 404, "not_found");
  },
);

withRevoked(
  "added back, the old claim is 409 claim_revoked",
  async ({ h, gone, ds, claimId, imageId }) => {
    await add(h, ds.id, gone);
    const submit = await gone.req("POST", `/api/v1/images/${imageId}/annotations`, {
      claim_id: claimId,
      labels: ["cat"],
    });
    assertError(submit, 409, "claim_revoked");
  },
);

withApp("removing a member of an open dataset leaves its claim alone", async (h) => {
  const gone = await h.user("annotator");
  const open = await dataset(h, { access: "open", images: 1 });
  await add(h, open.id, gone);
  const c = await gone.req("POST", `/api/v1/datasets/${open.id}/claims`);
  assert.equal(c.status, 201);
  await remove(h, open.id, gone);
  const renewed = await gone.req("POST", `/api/v1/claims/${c.body.claim.id}/renew`);
  assert.equal(renewed.status, 200, "still the holder's: the dataset is everyone's");
});

withApp("turning a dataset to members revokes only non-members' claims", async (h) => {
  const stays = await h.user("annotator");
  const gone = await h.user("annotator");
  const ds2 = await dataset(h, { access: "open", images: 3 });
  await add(h, ds2.id, stays);
  const mine = await stays.req("POST", `/api/v1/datasets/${ds2.id}/claims`);
  const theirs = await gone.req("POST", `/api/v1/datasets/${ds2.id}/claims`);
  const patched = await h.req("PATCH", `/api/v1/datasets/${ds2.id}`, { access: "members" });
  assert.equal(patched.status, 200);
  const reasons = await h.db.unsafe(
    "SELECT id::text, active, end_reason FROM claims WHERE id = ANY ($1::bigint[])",
    [[mine.body.claim.id, theirs.body.claim.id]],
  );
  const byId = Object.fromEntries(reasons.map((r) => [r.id, r]));
  assert.equal(byId[mine.body.claim.id].active, true, "a member's claim holds");
  assert.equal(byId[theirs.body.claim.id].end_reason, "revoked");
  const stats = await h.req("GET", `/api/v1/datasets/${ds2.id}/stats`);
  assert.equal(stats.body.active_claims, 1);
});

withApp("batched claims and submits answer each caller by its own membership", async (h) => {
  const ds = await dataset(h, { images: 40 });
  const inside = await Promise.all(Array.from({ length: 8 }, () => h.user("annotator")));
  const outside = await Promise.all(Array.from({ length: 8 }, () => h.user("annotator")));
  for (const u of inside) await add(h, ds.id, u);
  // Together, so the claims go to PostgreSQL in batches mixing both.
  const claims = await Promise.all(
    [...inside, ...outside].map((u) => u.req("POST", `/api/v1/datasets/${ds.id}/claims`)),
  );
  const got = claims.slice(0, 8);
  assert.deepEqual(got.map((r) => r.status), inside.map(() => 201));
  assert.equal(new Set(got.map((r) => r.body.claim.image_id)).size, 8, "eight images");
  for (const r of claims.slice(8)) assertError(r, 404, "not_found");
  // Submits together, one of them by a member removed meanwhile.
  await remove(h, ds.id, inside[7]);
  const submits = await Promise.all(
    inside.map((u, i) =>
      u.req("POST", `/api/v1/images/${got[i].body.claim.image_id}/annotations`, {
        claim_id: got[i].body.claim.id,
        labels: ["cat"],
      })
    ),
  );
  assert.deepEqual(submits.map((r) => r.status), [201, 201, 201, 201, 201, 201, 201, 404]);
  const stats = await h.req("GET", `/api/v1/datasets/${ds.id}/stats`);
  assert.equal(stats.body.human_annotations, 7);
  assert.equal(stats.body.active_claims, 0);
});

withApp("the statements refuse a holder whose membership is gone, claim or not", async (h) => {
  const u = await h.user("annotator");
  const ds = await dataset(h, { images: 2 });
  await add(h, ds.id, u);
  const c = await u.req("POST", `/api/v1/datasets/${ds.id}/claims`);
  assert.equal(c.status, 201);
  // The membership row goes without revoke_leases.sql: the claim stays active, and only the
  // statements' own rule stands between it and the dataset.
  await rawExec(h.db, "DELETE FROM dataset_members WHERE user_id = $1::bigint", [u.id]);
  const role = "annotator" as const;
  assert.equal(
    await claimNextImage(h.db, { dataset_id: ds.id, user_id: u.id, caller_role: role }),
    null,
  );
  assert.deepEqual(
    await claimNextImages(h.db, {
      dataset_id: ds.id,
      user_ids: [u.id],
      user_roles: [role],
      after_claim_ids: null,
    }),
    [undefined],
    "no 'held' answer showing the image",
  );
  const claimId = c.body.claim.id;
  assert.equal(
    await renewLease(h.db, {
      kind: "annotate",
      claim_id: claimId,
      user_id: u.id,
      caller_role: role,
    }),
    null,
  );
  assert.equal(
    await releaseLease(h.db, {
      kind: "annotate",
      claim_id: claimId,
      user_id: u.id,
      caller_id: u.id,
      caller_role: role,
    }),
    null,
  );
  assert.equal(
    await getLease(h.db, { kind: "annotate", id: claimId, caller_id: u.id, caller_role: role }),
    null,
  );
  const submit = await createHumanAnnotation(h.db, {
    claim_id: claimId,
    image_id: c.body.claim.image_id,
    user_id: u.id,
    caller_role: role,
    labels: ["cat"],
    shapes: [],
  });
  assert.equal(submit, null);
  const claim = await getLease(h.db, { kind: "annotate", id: claimId, ...SEES_ALL });
  assert.equal(claim?.active, true, "nothing was written");
});

withApp("may_see_dataset: admins everything, everyone open, members members", async (h) => {
  const member = await h.user("annotator");
  const ds = await dataset(h, { images: 1 });
  await add(h, ds.id, member);
  const cases: [string, string, string, boolean][] = [
    ["members", member.id, "annotator", true],
    ["members", "987654", "annotator", false],
    ["members", "987654", "machine", false],
    ["members", "987654", "admin", true],
    ["open", "987654", "annotator", true],
    ["open", "987654", "machine", true],
  ];
  for (const [access, user, role, expected] of cases) {
    const row = await rawOne<{ ok: boolean }>(
      h.db,
      "SELECT EXISTS (SELECT FROM may_see_dataset($1::bigint, $2::text, $3::bigint, $4::text)) AS ok",
      [ds.id, access, user, role],
    );
    assert.equal(row?.ok, expected, `${access}, ${role} ${user}`);
  }
});

/** The tables whose rows belong to a dataset. */
const SCOPED =
  /\b(datasets|images|annotations|(current_|ended_)?(claims|reviews|leases)|dataset_members)\b/;

/** Statements that need no rule, and why. */
const UNSCOPED: Record<string, string> = {
  "datasets/create_dataset": "admins only create datasets, and a new dataset is its creator's",
};

/**
 * may_see_dataset, and the functions of the schema that apply it themselves (their body calls
 * it, as new_image_rows does): a statement applies the rule when it calls one of them.
 */
async function ruleFunctions(): Promise<string[]> {
  const schema = await Deno.readTextFile(new URL("../db/schema.sql", import.meta.url));
  const names = ["may_see_dataset"];
  for (const m of schema.matchAll(/CREATE FUNCTION public\.(\w+)\(.*?\$\$(.*?)\$\$/gs)) {
    if (/\bmay_see_dataset\(/.test(m[2])) names.push(m[1]);
  }
  return names;
}

Deno.test("every statement on a dataset's rows applies may_see_dataset", async () => {
  const root = new URL("../sql/", import.meta.url);
  const rule = new RegExp(`\\b(${(await ruleFunctions()).join("|")})\\(`);
  const missing: string[] = [];
  let scoped = 0;
  for await (const dir of Deno.readDir(root)) {
    if (!dir.isDirectory) continue;
    for await (const f of Deno.readDir(new URL(`${dir.name}/`, root))) {
      if (!f.name.endsWith(".sql")) continue;
      const name = `${dir.name}/${f.name.slice(0, -4)}`;
      const sql = (await Deno.readTextFile(new URL(`${name}.sql`, root)))
        .replace(/--[^\n]*/g, "");
      if (!SCOPED.test(sql) || name in UNSCOPED) continue;
      scoped++;
      if (!rule.test(sql)) missing.push(name);
    }
  }
  assert.deepEqual(missing, [], "statements that read or write a dataset's rows without the rule");
  assert.ok(scoped >= 30, `${scoped} statements checked`);
});

Deno.test("the migration keeps existing datasets open and makes new ones members-only", async () => {
  const empty = await createEmptyDb();
  const db = connect(empty.url, { max: 1, connectTimeoutSeconds: 10, statementTimeoutMs: 60_000 });
  try {
    assert.equal((await dbmate(empty.url, ["up"])).code, 0);
    // Back to before it (past any later migration), a dataset as it was then, and up again.
    await rollBackBefore(db, empty.url, "20261206024325");
    await db.unsafe("INSERT INTO datasets (name, labels) VALUES ('before', '{a}')");
    assert.equal((await dbmate(empty.url, ["up"])).code, 0);
    await db.unsafe("INSERT INTO datasets (name, labels) VALUES ('after', '{a}')");
    const rows = await db.unsafe("SELECT name, access FROM datasets ORDER BY id");
    assert.deepEqual(rows.map((r) => [r.name, r.access]), [["before", "open"], [
      "after",
      "members",
    ]]);
  } finally {
    await db.end({ timeout: 5 });
    await empty.close();
  }
});

Deno.test({
  name: "the annotator's page offers only the datasets its user may open",
  ignore: noBrowser("tests/membership_test.ts"),
  async fn() {
    const s = await servePage();
    try {
      const image = [{ external_id: "one", width: 40, height: 30 }];
      const made = (name: string, access: "members" | "open") =>
        makeDataset(s, image, { name, access, predict: false });
      const mine = await made("Ours", "members");
      await made("Theirs", "members");
      await made("Everyone's", "open");
      const annotator = await s.h.user("annotator");
      await s.h.req("PUT", `/api/v1/datasets/${mine.id}/members/${annotator.id}`);
      const page = await (await s.browser.newContext()).newPage();
      await page.goto(`${s.base}/`);
      await page.getByLabel("API key").fill(annotator.apiKey);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("option", { name: "Ours" }).waitFor({ state: "attached" });
      const offered = await page.getByLabel("Dataset").locator("option").allTextContents();
      assert.deepEqual(offered.slice(1), ["Ours", "Everyone's"], "not another team's");
    } finally {
      await s.close();
    }
  },
});
