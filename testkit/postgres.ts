/**
 * PostgreSQL for spawned servers: a cluster of one's own that can be stopped, crashed and started
 * again (the stress suite), and a login role of one's own on a database (production's case).
 */
import postgres from "postgres";
import { dbmate } from "../lib/db/migrate.ts";
import { Cluster as EmbeddedCluster, stopOnSignals } from "../lib/runtime/embedded_pg.ts";

export interface Cluster {
  port: number;
  urlFor(database: string): string;
  /** A new database, migrated with dbmate like a production deploy. */
  createDatabase(name: string): Promise<string>;
  /** Fast shutdown (SIGINT): open sessions are ended with admin_shutdown. */
  stop(): Promise<void>;
  /** Immediate shutdown (SIGQUIT): no checkpoint; the next start runs crash recovery. */
  crash(): Promise<void>;
  start(): Promise<void>;
  /** Stops the cluster and deletes its data directory. */
  destroy(): Promise<void>;
}

/**
 * A cluster of lib/runtime/embedded_pg.ts (the development server's own code), with what the
 * stress scenarios need on top: stopping and starting it again on the same port and data
 * directory, killing it, and migrated databases. Durable settings (fsync on): the crash scenario
 * relies on them.
 */
export async function startCluster(dir: string, port: number): Promise<Cluster> {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  const pg = await EmbeddedCluster.prepare({
    dir,
    port,
    settings: { max_connections: "400", shared_buffers: "128MB" },
  });
  await pg.start();
  // An interrupted run leaves no server (nor its data) behind.
  const unwatch = stopOnSignals(() => pg.destroy());
  const urlFor = (database: string) => pg.urlFor(database);

  return {
    port,
    urlFor,
    async createDatabase(name) {
      const admin = postgres(urlFor("postgres"), { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`CREATE DATABASE ${name}`);
      } finally {
        await admin.end();
      }
      const url = urlFor(name);
      const migrated = await dbmate(url, ["up"]);
      if (migrated.code !== 0) throw new Error(`migrating ${name} failed:\n${migrated.stderr}`);
      return url;
    },
    stop: () => pg.stop(),
    crash: () => pg.crash(),
    start: () => pg.start(),
    destroy: () => {
      unwatch();
      return pg.destroy();
    },
  };
}

/**
 * A login role with a password full of URL-special characters, allowed everything in the
 * database at `url`; `drop` removes it (after the database is gone).
 */
export async function createLoginRole(
  url: string,
  /** Where to drop it from: a database that outlives `url`'s. */
  adminUrl: string,
): Promise<{ user: string; password: string; drop(): Promise<void> }> {
  const user = `app_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const password = `p@ss:w/rd?#%&= ${crypto.randomUUID().slice(0, 8)}`;
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE ROLE ${user} LOGIN PASSWORD '${password.replaceAll("'", "''")}'`);
    await admin.unsafe(`GRANT USAGE, CREATE ON SCHEMA public TO ${user}`);
    await admin.unsafe(`GRANT ALL ON ALL TABLES IN SCHEMA public TO ${user}`);
    await admin.unsafe(`GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO ${user}`);
  } finally {
    await admin.end();
  }
  return {
    user,
    password,
    async drop() {
      const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
      try {
        await admin.unsafe(`DROP ROLE IF EXISTS ${user}`);
      } finally {
        await admin.end();
      }
    },
  };
}
