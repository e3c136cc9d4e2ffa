/**
 * The changes feed under a bulk prediction load: a `source=human` poll reads only human rows
 * (an index range scan on (dataset_id, source, txid, id), shown by EXPLAIN), pages stay correct,
 * and an empty page moves the cursor without ever passing a row that commits later.
 */
import assert from "node:assert/strict";
import { type Db, type Handle } from "../lib/db/pool.ts";
import { transaction } from "../lib/db/query.ts";
import { bind, statement } from "../lib/db/statement.ts";
import {
  type AnnotationSource,
  decodeFeedCursor,
  type FeedCursor,
  listDatasetAnnotations,
  type ListDatasetAnnotationsParams,
} from "../sql/annotations/queries.ts";
import { createDataset } from "../sql/datasets/queries.ts";
import { imageBatch, registerImages } from "../sql/images/queries.ts";
import { rawMany, SEES_ALL, withDb } from "./harness.ts";

const FEED = statement<ListDatasetAnnotationsParams>("annotations/list_dataset_annotations");
const SOURCE_INDEX = "annotations_dataset_source_txid_id_idx";

interface PlanNode {
  "Node Type": string;
  "Index Name"?: string;
  "Relation Name"?: string;
  "Index Cond"?: string;
  Filter?: string;
  "Rows Removed by Filter"?: number;
  "Actual Rows"?: number;
  "Actual Loops"?: number;
  Plans?: PlanNode[];
}

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

/** The feed's plan with `params` (EXPLAIN ANALYZE), or its generic plan without them. */
async function explain(
  db: Db,
  params: ListDatasetAnnotationsParams | null,
): Promise<PlanNode[]> {
  const rows = params
    ? await db.unsafe(`EXPLAIN (ANALYZE, FORMAT JSON) ${FEED.text}`, bind(FEED, params) as never[])
    : await db.unsafe(`EXPLAIN (GENERIC_PLAN, FORMAT JSON) ${FEED.text}`);
  const plan = rows[0]["QUERY PLAN"] as { Plan: PlanNode }[];
  return nodes(plan[0].Plan);
}

/** The scan of annotations in a plan: there must be exactly one. */
function annotationScan(plan: PlanNode[]): PlanNode {
  const scans = plan.filter((n) =>
    n["Node Type"].includes("Scan") && n["Relation Name"] === "annotations"
  );
  assert.equal(scans.length, 1, JSON.stringify(plan));
  // The catalogs behind pg_stat_activity (the horizon, see list_dataset_annotations.sql) may be
  // scanned whole; annotations never.
  assert.ok(
    !plan.some((n) => n["Node Type"] === "Seq Scan" && n["Relation Name"] === "annotations"),
    "no sequential scan of annotations",
  );
  return scans[0];
}

interface Feed {
  db: Db;
  ds: { id: string };
  /** `n` annotations of `source` in one transaction (as a bulk load writes them); their ids. */
  write(source: AnnotationSource, n: number, on?: Handle): Promise<string[]>;
  /**
   * Polls until a page comes back empty (and, with `want`, that many ids came: a poll may come back
   * empty for a moment while a transaction of another database ends, which feed_horizon cannot
   * place, and other tests' databases are cloned and dropped all the time); every id received,
   * and the last cursor.
   */
  drain(
    source: AnnotationSource | null,
    after: FeedCursor | null,
    limit?: number,
    want?: number,
  ): Promise<{ ids: string[]; cursor: FeedCursor }>;
  /** Five human rows written first, and the human poll that read them. */
  firstHumans: string[];
  start: { ids: string[]; cursor: FeedCursor };
  /** 30,000 machine rows written after them. */
  bulk: string[];
  /** The last of the first human rows, and its txid. */
  cursor: { id: string };
  txid: string;
}

/**
 * A test on its own database with the changes feed under a bulk prediction load: five human
 * rows, polled, then 30,000 machine rows in two transactions, analyzed.
 */
function withFeed(name: string, fn: (f: Feed) => Promise<void>): void {
  withDb(name, async ({ db }) => {
    const ds = (await createDataset(db, {
      name: "feed-bulk",
      description: null,
      labels: ["cat"],
      annotations_per_image: 1,
      claim_ttl_seconds: 900,
      access: "open",
    }))!;
    const images = await registerImages(
      db,
      imageBatch(
        ds.id,
        Array.from({ length: 20 }, (_, i) => ({ uri: `s3://b/feed/${i}.jpg` })),
        SEES_ALL,
      ),
    );
    const image = images[0].id!;
    const [{ id: machine }] = await rawMany<{ id: string }>(
      db,
      `INSERT INTO users (name, role) VALUES ('feed-model', 'machine') RETURNING id::text`,
      [],
    );
    const [{ id: annotator }] = await rawMany<{ id: string }>(
      db,
      `INSERT INTO users (name, role) VALUES ('feed-annotator', 'annotator') RETURNING id::text`,
      [],
    );

    const write = async (source: AnnotationSource, n: number, on: Handle = db) =>
      (await rawMany<{ id: string }>(
        on,
        `INSERT INTO annotations (image_id, dataset_id, source, author_id, model_name,
           model_version)
         SELECT $1::bigint, $2::bigint, $3::text, $4::bigint,
           -- One model per row: an image holds one current prediction per model.
           CASE WHEN $3::text = 'machine' THEN 'bulk-' || gen_random_uuid() END,
           CASE WHEN $3::text = 'machine' THEN '1' END
         FROM generate_series(1, $5::integer)
         RETURNING id::text`,
        [image, ds.id, source, source === "machine" ? machine : annotator, n],
      )).map((r) => r.id);

    const drain = async (
      source: AnnotationSource | null,
      after: FeedCursor | null,
      limit = 3,
      want = 0,
    ) => {
      const ids: string[] = [];
      let cursor = after;
      for (const deadline = Date.now() + 5000;;) {
        const page =
          (await listDatasetAnnotations(db, ds.id, { source, after: cursor, limit }, SEES_ALL))!;
        assert.ok(page.items.length <= limit);
        assert.ok(page.items.every((a) => source === null || a.source === source));
        ids.push(...page.items.map((a) => a.id));
        cursor = decodeFeedCursor(page.next_cursor);
        assert.ok(cursor, page.next_cursor);
        if (!page.items.length) {
          if (ids.length >= want || Date.now() > deadline) return { ids, cursor };
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    };

    const firstHumans = await write("human", 5);
    const start = await drain("human", null, 3, firstHumans.length);
    assert.deepEqual(start.ids, firstHumans);
    // A bulk prediction load lands after the human poller's cursor.
    const bulk = [...await write("machine", 20_000), ...await write("machine", 10_000)];
    await db.unsafe("ANALYZE annotations");
    const cursor = (await listDatasetAnnotations(db, ds.id, {
      source: "human",
      after: null,
      limit: 5,
    }, SEES_ALL))!.items.at(-1)!;
    const [{ txid }] = await rawMany<{ txid: string }>(
      db,
      "SELECT txid::text FROM annotations WHERE id = $1::bigint",
      [cursor.id],
    );
    await fn({ db, ds, write, drain, firstHumans, start, bulk, cursor, txid });
  });
}

withFeed(
  "feed: a human poll past 30,000 machine rows is an index range scan",
  async ({ db, ds, cursor, txid }) => {
    const page = {
      dataset_id: ds.id,
      after_txid: txid,
      after_id: cursor.id,
      limit: 100,
      ...SEES_ALL,
    };
    const plan = await explain(db, { ...page, sources: ["human"] });
    const scan = annotationScan(plan);
    assert.equal(scan["Index Name"], SOURCE_INDEX, JSON.stringify(scan));
    assert.match(scan["Index Cond"] ?? "", /source/, "source bounds the range");
    assert.match(scan["Index Cond"] ?? "", /txid/, "so does the cursor");
    assert.equal(scan.Filter, undefined, `nothing read is thrown away: ${scan.Filter}`);
    assert.equal(scan["Rows Removed by Filter"] ?? 0, 0);
    assert.equal(scan["Actual Rows"], 0, "the machine rows are not read at all");
    // The same holds for the generic plan a prepared statement may switch to.
    const generic = annotationScan(await explain(db, null));
    assert.equal(generic["Index Name"], SOURCE_INDEX, JSON.stringify(generic));
    assert.match(generic["Index Cond"] ?? "", /source/);
    assert.equal(generic.Filter, undefined);
  },
);

withFeed(
  "feed: the unfiltered feed reads a page per source, not the dataset",
  async ({ db, ds, cursor, txid }) => {
    const plan = await explain(db, {
      dataset_id: ds.id,
      sources: ["human", "machine"],
      after_txid: txid,
      after_id: cursor.id,
      limit: 100,
      ...SEES_ALL,
    });
    const scan = annotationScan(plan);
    assert.equal(scan["Index Name"], SOURCE_INDEX);
    assert.equal(scan["Actual Loops"], 2, "one scan per source");
    // Actual Rows is per loop: 100 machine rows, and no human row after the cursor.
    assert.equal(scan["Actual Rows"]! * scan["Actual Loops"]!, 100, "each stops at the limit");
  },
);

withFeed(
  "feed: human and machine pages stay correct around the bulk",
  async ({ write, drain, firstHumans, start, bulk }) => {
    const laterHumans: string[] = [];
    const laterMachines: string[] = [];
    for (let i = 0; i < 4; i++) {
      laterHumans.push(...await write("human", 2));
      laterMachines.push(...await write("machine", 3));
    }
    const humans = await drain("human", null, 3, firstHumans.length + laterHumans.length);
    assert.deepEqual(humans.ids, [...firstHumans, ...laterHumans], "each human row once");
    const resumed = await drain("human", start.cursor, 4, laterHumans.length);
    assert.deepEqual(resumed.ids, laterHumans, "resuming from a cursor before the bulk");
    const machines = await drain("machine", null, 1000, bulk.length + laterMachines.length);
    assert.deepEqual(machines.ids, [...bulk, ...laterMachines]);
    const all = await drain(
      null,
      start.cursor,
      1000,
      bulk.length + laterHumans.length + laterMachines.length,
    );
    assert.equal(all.ids.length, bulk.length + laterHumans.length + laterMachines.length);
    assert.equal(new Set(all.ids).size, all.ids.length);
  },
);

withFeed(
  "feed: an empty page moves the cursor, never past a row that commits later",
  async ({ db, ds, write, drain }) => {
    const idle = await drain("human", null, 100);
    const before = idle.cursor;
    // An idle poll moves the cursor forward (past the machine rows it had no need to read).
    await write("machine", 10);
    const moved = (await listDatasetAnnotations(db, ds.id, {
      source: "human",
      after: before,
      limit: 10,
    }, SEES_ALL))!;
    assert.deepEqual(moved.items, []);
    const next = decodeFeedCursor(moved.next_cursor)!;
    assert.ok(BigInt(next.txid) > BigInt(before.txid), "the cursor moved on");

    // A transaction writes a human row and stays open while polls come back empty...
    const inserted = Promise.withResolvers<string>();
    const finish = Promise.withResolvers<void>();
    const open = transaction(db, async (tx) => {
      inserted.resolve((await write("human", 1, tx))[0]);
      await finish.promise;
    });
    const late = await inserted.promise;
    const later = await write("human", 2);
    let c: FeedCursor = next;
    for (const source of ["human", "human", null] as const) {
      const page =
        (await listDatasetAnnotations(db, ds.id, { source, after: c, limit: 10 }, SEES_ALL))!;
      assert.deepEqual(page.items, [], "rows behind a running transaction wait for it");
      const n = decodeFeedCursor(page.next_cursor)!;
      assert.ok(BigInt(n.txid) >= BigInt(c.txid), "the cursor never goes back");
      c = source === null ? c : n;
    }
    // ...and forged cursors beyond the horizon are kept, not moved back.
    const far = { txid: "18446744073709551615", id: "5" };
    const kept = (await listDatasetAnnotations(db, ds.id, {
      source: "human",
      after: far,
      limit: 10,
    }, SEES_ALL))!;
    assert.equal(kept.next_cursor, `${far.txid}.${far.id}`);

    finish.resolve();
    await open;
    const rest = await drain("human", c, 10, 1 + later.length);
    assert.deepEqual(rest.ids, [late, ...later], "the late row was not skipped");
  },
);
