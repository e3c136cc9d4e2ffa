/**
 * The benchmark's PostgreSQL: an embedded cluster with default durability (fsync on,
 * synchronous_commit on), or a scratch database created on the server of DATABASE_URL and
 * dropped afterwards. Both the service and the raw-SQL ceiling run on it, with the same settings.
 */
import postgres from "postgres";
import { freePort, startEmbeddedPostgres } from "../../lib/runtime/embedded_pg.ts";

export interface BenchDatabase {
  url: string;
  /** Where it runs, for the report. */
  kind: "embedded" | "DATABASE_URL";
  stop(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/**
 * `pgStats`: load pg_stat_statements (embedded only), for a per-statement breakdown. Off by
 * default: the figures are measured without it.
 */
export async function openBenchDatabase(
  serverUrl: string | undefined,
  pgStats = false,
): Promise<BenchDatabase> {
  const name = `annotation_bench_${Deno.pid}`;
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
  const pg = await startEmbeddedPostgres({
    dir: `.data/bench-postgres-${Deno.pid}`,
    port: freePort(),
    database: name,
    persistent: false,
    settings: pgStats
      ? { shared_preload_libraries: "pg_stat_statements", "pg_stat_statements.track": "all" }
      : {},
  });
  return { url: pg.url, kind: "embedded", stop: () => pg.stop() };
}

/** The settings that decide what a commit costs, for the report. */
export async function durabilitySettings(sql: postgres.Sql): Promise<Record<string, string>> {
  const rows = await sql<{ name: string; setting: string; unit: string | null }[]>`
    SELECT name, setting, unit FROM pg_settings
    WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes',
      'shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'max_connections')
    ORDER BY name`;
  return Object.fromEntries(rows.map((r) => [r.name, r.setting + (r.unit ? ` ${r.unit}` : "")]));
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
