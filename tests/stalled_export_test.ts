/**
 * Clients that start an export and stop reading must not take the database pool from everyone
 * else (lib/db/query.ts readSnapshot: a share of the pool for streams, and an idle cut-off). Found by
 * `deno task stress` (scenario "limits"): 16 stalled exports held all 10 connections of a
 * server and every other request timed out.
 */
import assert from "node:assert/strict";
import { activity } from "../lib/db/query.ts";
import { snapshotLimits } from "../lib/db/snapshot.ts";
import { type TestApp, withApp } from "./harness.ts";

async function bigDataset(h: TestApp): Promise<string> {
  const ds = await h.req("POST", "/api/v1/datasets", {
    name: `stalled-${crypto.randomUUID()}`,
    access: "open",
    labels: ["a"],
  });
  const reg = await h.req("POST", `/api/v1/datasets/${ds.body.id}/images`, {
    images: Array.from({ length: 2000 }, (_, i) => ({ uri: `s3://b/stalled/${i}.jpg` })),
  });
  assert.equal(reg.status, 200);
  return ds.body.id;
}

/** Starts an export and reads its first chunk only: the stream stays open, unread. */
async function stalledExport(h: TestApp, datasetId: string) {
  const res = await h.app.request(`/api/v1/datasets/${datasetId}/export?status=all`, {
    headers: { authorization: `Bearer ${h.admin.token}` },
  });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  return { reader, first: reader.read() };
}

/**
 * A test on a fresh app with a pool of 4 and a 2,000-image dataset; snapshotLimits, which a test
 * may change, are restored after.
 */
function withStalled(name: string, fn: (t: { h: TestApp; datasetId: string }) => Promise<void>) {
  withApp(name, { poolMax: 4, config: { REQUEST_TIMEOUT_MS: "3000" } }, async (h) => {
    const saved = { ...snapshotLimits };
    try {
      await fn({ h, datasetId: await bigDataset(h) });
    } finally {
      Object.assign(snapshotLimits, saved);
    }
  });
}

withStalled(
  "stalled exports: more stalled exports than the pool has connections: others are served",
  async ({ h, datasetId }) => {
    const exports = await Promise.all(
      Array.from({ length: 6 }, () => stalledExport(h, datasetId)),
    );
    // Two of them (half the pool) stream; the others wait for a turn.
    for (let i = 0; i < 100 && activity.transactions < 2; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      const res = await h.req("GET", `/api/v1/datasets/${datasetId}/stats`);
      const ms = performance.now() - started;
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.ok(ms < 1000, `a request took ${Math.round(ms)} ms beside stalled exports`);
    }
    // Hanging up ends them all, and every export that waited for a turn still completes.
    await Promise.all(exports.map((e) => e.reader.cancel()));
    const full = await h.req("GET", `/api/v1/datasets/${datasetId}/export?status=all`);
    assert.equal(full.status, 200);
    assert.equal(String(full.body).trim().split("\n").length, 2000);
  },
);

withStalled(
  "stalled exports: an export nobody reads is cut off after the idle time",
  async ({ h, datasetId }) => {
    snapshotLimits.idleMs = 300;
    const before = activity.transactions;
    const e = await stalledExport(h, datasetId);
    await e.first;
    assert.equal(activity.transactions, before + 1, "streaming holds a transaction");
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(activity.transactions, before, "the idle stream gave its connection back");
    await assert.rejects(async () => {
      while (!(await e.reader.read()).done) {
        // drain
      }
    });
  },
);
