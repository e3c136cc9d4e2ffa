/**
 * A throwaway PostgreSQL cluster from the distribution's binaries (Debian's postgresql-15 by
 * default: POSTGRES_BIN), for what the embedded server cannot do: `pg_dump` of the schema (the
 * embedded package ships no pg_dump, and a pg_dump refuses a server newer than itself), and a
 * reference server with production-like settings for the bench. TCP on 127.0.0.1 only, no Unix
 * socket. As root, the cluster runs as the `postgres` system user (PostgreSQL refuses root), in a
 * directory under the system temporary directory that user owns.
 */
import postgres from "postgres";

/** Where the binaries are: POSTGRES_BIN, else Debian's PostgreSQL 15. */
export function postgresBin(): string {
  return Deno.env.get("POSTGRES_BIN") ?? "/usr/lib/postgresql/15/bin";
}

/** Whether `initdb`, `pg_ctl` and `pg_dump` are there. */
export function haveDebianPostgres(bin = postgresBin()): boolean {
  return ["initdb", "pg_ctl", "pg_dump"].every((tool) => {
    try {
      return Deno.statSync(`${bin}/${tool}`).isFile;
    } catch {
      return false;
    }
  });
}

export interface DebianCluster {
  port: number;
  /** The binaries' directory (pg_dump, pgbench, psql live there). */
  bin: string;
  urlFor(database: string): string;
  /** Stops the server (immediate: nothing in it is kept) and deletes its directory. */
  destroy(): Promise<void>;
}

async function run(cmd: string[], asPostgres: boolean): Promise<string> {
  const argv = asPostgres ? ["/usr/sbin/runuser", "-u", "postgres", "--", ...cmd] : cmd;
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd.join(" ")} failed (exit ${out.code}):\n${text}`);
  return text;
}

async function userIds(name: string): Promise<{ uid: number; gid: number }> {
  const id = async (flag: string) => Number((await run(["id", flag, name], false)).trim());
  return { uid: await id("-u"), gid: await id("-g") };
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * Initialises and starts a cluster with `settings` (`postgres -c` names and values) and trust
 * authentication on 127.0.0.1 for the `postgres` role.
 */
export async function startDebianCluster(
  settings: Record<string, string> = {},
): Promise<DebianCluster> {
  const bin = postgresBin();
  if (!haveDebianPostgres(bin)) {
    throw new Error(
      `no PostgreSQL binaries in ${bin}: apt-get install postgresql-15, or set ` +
        "POSTGRES_BIN to a directory with initdb, pg_ctl and pg_dump",
    );
  }
  const asPostgres = Deno.uid() === 0;
  const dir = await Deno.makeTempDir({ prefix: "annotation-pg-" });
  if (asPostgres) {
    const { uid, gid } = await userIds("postgres");
    await Deno.chown(dir, uid, gid);
  }
  const data = `${dir}/data`;
  const port = freePort();
  await run(
    [`${bin}/initdb`, "-D", data, "-U", "postgres", "-A", "trust", "--no-sync"],
    asPostgres,
  );
  const options = Object.entries({
    listen_addresses: "127.0.0.1",
    port: String(port),
    unix_socket_directories: "",
    ...settings,
  }).map(([k, v]) => `-c ${k}=${v === "" ? "''" : v}`).join(" ");
  try {
    await run(
      [`${bin}/pg_ctl`, "-D", data, "-l", `${dir}/log`, "-o", options, "-w", "-t", "60", "start"],
      asPostgres,
    );
  } catch (e) {
    const log = await Deno.readTextFile(`${dir}/log`).catch(() => "");
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw new Error(`${(e as Error).message}\n${log.split("\n").slice(-15).join("\n")}`);
  }
  const urlFor = (database: string) =>
    `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  return {
    port,
    bin,
    urlFor,
    async destroy() {
      await run([`${bin}/pg_ctl`, "-D", data, "-m", "immediate", "-w", "stop"], asPostgres)
        .catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Creates `name` on the cluster. */
export async function createDatabase(cluster: DebianCluster, name: string): Promise<string> {
  const admin = postgres(cluster.urlFor("postgres"), { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
  } finally {
    await admin.end();
  }
  return cluster.urlFor(name);
}
