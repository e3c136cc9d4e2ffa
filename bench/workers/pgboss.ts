/**
 * The peer (runs in a Worker): pg-boss fetch + complete, one job at a time per consumer, at the
 * given concurrency, until the shared budget is spent. pg-boss is a library, so its JavaScript
 * runs here, in the client, where ours runs in the server process.
 */
import type { PgBoss } from "pg-boss";
import { bossFor } from "../lib/pgboss.ts";
import { serveWorker, take } from "../lib/workers.ts";

export interface PgBossJob {
  url: string;
  queue: string;
  concurrency: number;
  /** pg-boss's connection pool (its default is 10, as is the server's DB_POOL_MAX). */
  poolMax: number;
  budget: SharedArrayBuffer;
}

export interface PgBossResult {
  cycles: number;
  fetchMs: number[];
  completeMs: number[];
  drained: number;
}

async function consumer(boss: PgBoss, job: PgBossJob, out: PgBossResult): Promise<void> {
  const counter = new Int32Array(job.budget);
  while (take(counter)) {
    const t0 = performance.now();
    const [got] = await boss.fetch(job.queue);
    const t1 = performance.now();
    if (!got) {
      out.drained++;
      return;
    }
    await boss.complete(job.queue, got.id);
    out.fetchMs.push(t1 - t0);
    out.completeMs.push(performance.now() - t1);
    out.cycles++;
  }
}

serveWorker(
  async (job: PgBossJob) => {
    const boss = bossFor(job.url, job.poolMax);
    boss.on("error", (e) => console.error(`pg-boss: ${e.message}`));
    await boss.start();
    // Fill the pool before the clock starts.
    await Promise.all(
      Array.from({ length: job.poolMax }, () => boss.getQueue(job.queue)),
    );
    return { boss, job };
  },
  async ({ boss, job }) => {
    const out: PgBossResult = { cycles: 0, fetchMs: [], completeMs: [], drained: 0 };
    try {
      await Promise.all(Array.from({ length: job.concurrency }, () => consumer(boss, job, out)));
    } finally {
      await boss.stop({ graceful: false, close: true });
    }
    return out;
  },
);
