/**
 * The embedded PostgreSQL (lib/runtime/embedded_pg.ts) as development and the test runner use
 * it: real servers on real ports, in data directories under .data/ of this checkout.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import {
  EmbeddedPostgresError,
  type EmbeddedServer,
  freePort,
  ROOT_STATE_DIR,
  startEmbeddedPostgres,
} from "../lib/runtime/embedded_pg.ts";
import { baseEnv, devTaskFlags, readLines, ROOT_DIR } from "../testkit/process.ts";

/** A fresh parent directory for this test's data directories; `cleanup` removes it. */
async function scratch(): Promise<{ dir: string; cleanup(): Promise<void> }> {
  const dir = `${ROOT_DIR}/.data/embedded-test-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir, { recursive: true });
  return { dir, cleanup: () => Deno.remove(dir, { recursive: true }).catch(() => {}) };
}

async function query<T>(url: string, text: string): Promise<T[]> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await sql.unsafe(text) as unknown as T[];
  } finally {
    await sql.end();
  }
}

async function dataDirectory(url: string): Promise<string> {
  const [row] = await query<{ data_directory: string }>(url, "SHOW data_directory");
  return row.data_directory;
}

Deno.test("no Unix socket: the server listens on TCP only and writes nothing to /tmp", async () => {
  const s = await scratch();
  try {
    const server = await startEmbeddedPostgres({
      dir: `${s.dir}/pg`,
      port: freePort(),
      database: "postgres",
      persistent: false,
    });
    try {
      const [row] = await query<{ unix_socket_directories: string }>(
        server.url,
        "SHOW unix_socket_directories",
      );
      assert.equal(row.unix_socket_directories, "");
      for (const name of [`.s.PGSQL.${server.port}`, `.s.PGSQL.${server.port}.lock`]) {
        await assert.rejects(() => Deno.lstat(`/tmp/${name}`), Deno.errors.NotFound, name);
      }
    } finally {
      await server.stop();
    }
    await assert.rejects(() => Deno.lstat(`${s.dir}/pg`), Deno.errors.NotFound, "deleted");
  } finally {
    await s.cleanup();
  }
});

Deno.test("an occupied port: the error quotes PostgreSQL and names EMBEDDED_DB_PORT", async () => {
  const s = await scratch();
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  try {
    await assert.rejects(
      () =>
        startEmbeddedPostgres({
          dir: `${s.dir}/pg`,
          port,
          portSetting: "EMBEDDED_DB_PORT",
          database: "postgres",
          persistent: false,
        }),
      (e: unknown) => {
        assert.ok(e instanceof EmbeddedPostgresError, String(e));
        assert.match(
          e.message,
          new RegExp(
            `did not start on port ${port}: PostgreSQL says: could not bind IPv4 ` +
              `address "127\\.0\\.0\\.1": Address already in use`,
          ),
        );
        assert.match(e.message, new RegExp(`EMBEDDED_DB_PORT=${port}: set it to a free port`));
        assert.doesNotMatch(e.message, /another server/);
        assert.doesNotMatch(e.message, /\n/, "one line");
        return true;
      },
    );
    await assert.rejects(() => Deno.lstat(`${s.dir}/pg`), Deno.errors.NotFound, "cleaned up");
  } finally {
    taken.close();
    await s.cleanup();
  }
});

Deno.test("a socket directory PostgreSQL cannot use: its own reason, not a guess", async () => {
  const s = await scratch();
  try {
    const port = freePort();
    await assert.rejects(
      () =>
        startEmbeddedPostgres({
          dir: `${s.dir}/pg`,
          port,
          database: "postgres",
          persistent: false,
          // What the default (/tmp) did where /tmp was not writable.
          settings: { unix_socket_directories: `${s.dir}/missing` },
        }),
      (e: unknown) => {
        assert.ok(e instanceof EmbeddedPostgresError, String(e));
        assert.ok(
          e.message.includes(
            `could not create lock file "${s.dir}/missing/.s.PGSQL.${port}.lock": ` +
              "No such file or directory",
          ),
          e.message,
        );
        return true;
      },
    );
  } finally {
    await s.cleanup();
  }
});

Deno.test("two data directories: two servers on two ports, each port remembered", async () => {
  const s = await scratch();
  const [a, b] = [`${s.dir}/a/postgres`, `${s.dir}/b/postgres`];
  try {
    const first = await startEmbeddedPostgres({ dir: a, database: "annotations" });
    const second = await startEmbeddedPostgres({ dir: b, database: "annotations" });
    const ports = [first.port, second.port];
    try {
      assert.ok(first.started && second.started);
      assert.notEqual(first.port, second.port);
      assert.ok(ports.every((p) => p >= 54329), `from 54329 up: ${ports}`);
      assert.equal(await dataDirectory(first.url), await Deno.realPath(a));
      assert.equal(await dataDirectory(second.url), await Deno.realPath(b));
      assert.equal(await Deno.readTextFile(`${a}.port`), `${first.port}\n`);
      assert.equal(await Deno.readTextFile(`${b}.port`), `${second.port}\n`);
    } finally {
      await first.stop();
      await second.stop();
    }

    // Started again: the same ports, the same data.
    const again = await startEmbeddedPostgres({ dir: a, database: "annotations" });
    try {
      assert.equal(again.port, ports[0]);
      assert.equal(await dataDirectory(again.url), await Deno.realPath(a));
    } finally {
      await again.stop();
    }
  } finally {
    await s.cleanup();
  }
});

/** One test with a server running on data directory `a`; `b` is a second directory, unmade. */
function withRunningServer(
  name: string,
  fn: (t: { s: { dir: string }; a: string; b: string; first: EmbeddedServer }) => Promise<void>,
): void {
  Deno.test(`a running server is reused only by its own data directory: ${name}`, async () => {
    const s = await scratch();
    const [a, b] = [`${s.dir}/a/postgres`, `${s.dir}/b/postgres`];
    const first = await startEmbeddedPostgres({ dir: a, database: "annotations" });
    try {
      await fn({ s, a, b, first });
    } finally {
      await first.stop();
      await s.cleanup();
    }
  });
}

withRunningServer(
  "the same directory: the running server, not a second one",
  async ({ a, first }) => {
    const reused = await startEmbeddedPostgres({ dir: a, database: "annotations" });
    assert.equal(reused.started, false);
    assert.equal(reused.port, first.port);
    await reused.stop(); // A no-op: it did not start it.
    assert.equal(await dataDirectory(first.url), await Deno.realPath(a));
  },
);

withRunningServer(
  "another directory remembering that port: a server of its own",
  async ({ s, b, first }) => {
    // As when the other clone's server took the port this one had before.
    await Deno.mkdir(`${s.dir}/b`);
    await Deno.writeTextFile(`${b}.port`, `${first.port}\n`);
    const second = await startEmbeddedPostgres({ dir: b, database: "annotations" });
    try {
      assert.equal(second.started, true);
      assert.notEqual(second.port, first.port);
      assert.equal(await dataDirectory(second.url), await Deno.realPath(b));
      assert.equal(await Deno.readTextFile(`${b}.port`), `${second.port}\n`, "remembered");
    } finally {
      await second.stop();
    }
  },
);

withRunningServer(
  "EMBEDDED_DB_PORT other than the running server's: refused",
  async ({ a, first }) => {
    const other = freePort();
    await assert.rejects(
      () =>
        startEmbeddedPostgres({
          dir: a,
          port: other,
          portSetting: "EMBEDDED_DB_PORT",
          database: "annotations",
        }),
      new RegExp(
        `already running on port ${first.port}, not EMBEDDED_DB_PORT=${other}: stop it, ` +
          `or unset EMBEDDED_DB_PORT`,
      ),
    );
  },
);

Deno.test("two starts of one data directory at once share one server", async () => {
  const s = await scratch();
  const dir = `${s.dir}/postgres`;
  try {
    const servers = await Promise.all(
      [1, 2, 3].map(() => startEmbeddedPostgres({ dir, database: "annotations" })),
    );
    try {
      assert.deepEqual(servers.map((x) => x.started).sort(), [false, false, true]);
      assert.equal(new Set(servers.map((x) => x.port)).size, 1);
    } finally {
      for (const server of servers) await server.stop();
    }
  } finally {
    await s.cleanup();
  }
});

const ROOT = Deno.uid() === 0;

/**
 * As root, one test on `.data/postgres` in a scratch directory closed to everyone but its owner
 * (like a clone under /root). `kept(target)` records where the data went, removed afterwards.
 */
function withRootData(
  name: string,
  fn: (dir: string, kept: (target: string) => void) => Promise<void>,
): void {
  Deno.test({
    name: `as root, a data directory user postgres cannot reach: ${name}`,
    ignore: !ROOT,
    async fn() {
      const s = await scratch();
      await Deno.chmod(s.dir, 0o700);
      let target = "";
      try {
        await fn(`${s.dir}/postgres`, (t) => target = t);
      } finally {
        if (target) await Deno.remove(target, { recursive: true }).catch(() => {});
        await s.cleanup();
      }
    },
  });
}

/** Starts the embedded server on `dir` (as root: its data under ROOT_STATE_DIR), with a table. */
async function startWithTable(dir: string, kept: (target: string) => void): Promise<string> {
  const server = await startEmbeddedPostgres({ dir, database: "annotations" });
  try {
    kept(server.dataDir);
    await query(server.url, "CREATE TABLE kept (x int)");
    return server.dataDir;
  } finally {
    await server.stop();
  }
}

withRootData(
  `kept in ${ROOT_STATE_DIR}, .data/postgres a symlink to it`,
  async (dir, kept) => {
    const server = await startEmbeddedPostgres({ dir, database: "annotations" });
    try {
      const target = server.dataDir;
      kept(target);
      assert.ok(target.startsWith(`${ROOT_STATE_DIR}/data-`), target);
      assert.ok((await Deno.lstat(dir)).isSymlink);
      assert.equal(await Deno.realPath(dir), target);
      assert.equal(await dataDirectory(server.url), target);
      const owner = (await Deno.stat(target)).uid;
      assert.notEqual(owner, 0, "owned by the postgres user");
    } finally {
      await server.stop();
    }
  },
);

withRootData("started again: the same data", async (dir, kept) => {
  const target = await startWithTable(dir, kept);
  const server = await startEmbeddedPostgres({ dir, database: "annotations" });
  try {
    assert.equal(server.dataDir, target);
    await query(server.url, "SELECT x FROM kept");
  } finally {
    await server.stop();
  }
});

withRootData("the symlink deleted (rm -rf .data): a new, empty cluster", async (dir, kept) => {
  const target = await startWithTable(dir, kept);
  await Deno.remove(dir);
  const server = await startEmbeddedPostgres({ dir, database: "annotations" });
  try {
    assert.equal(server.dataDir, target, "the same place: the path did not change");
    const rows = await query(server.url, "SELECT 1 FROM pg_tables WHERE tablename = 'kept'");
    assert.equal(rows.length, 0, "the old data is gone");
  } finally {
    await server.stop();
  }
});

withRootData(
  "a killed server, then rm -rf .data: its stale pid file is no obstacle",
  async (dir, kept) => {
    const server = await startEmbeddedPostgres({
      dir,
      database: "annotations",
      stopOnSignals: false,
    });
    const target = server.dataDir;
    kept(target);
    const pid = Number((await Deno.readTextFile(`${target}/postmaster.pid`)).split("\n")[0]);
    Deno.kill(pid, "SIGKILL");
    while (await Deno.stat(`/proc/${pid}`).then(() => true, () => false)) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await server.stop(); // Reaps the killed child.
    assert.ok((await Deno.stat(`${target}/postmaster.pid`)).isFile, "left behind");
    await Deno.remove(dir);
    const again = await startEmbeddedPostgres({ dir, database: "annotations" });
    try {
      assert.equal(again.dataDir, target);
      assert.equal(await dataDirectory(again.url), target);
    } finally {
      await again.stop();
    }
  },
);

/** As root, a test in a scratch directory closed to everyone but its owner (a clone under /root). */
function withClosedScratch(name: string, fn: (dir: string) => Promise<void>): void {
  Deno.test({
    name,
    ignore: !ROOT,
    async fn() {
      const s = await scratch();
      await Deno.chmod(s.dir, 0o700);
      try {
        await fn(s.dir);
      } finally {
        await s.cleanup();
      }
    },
  });
}

withClosedScratch(
  "as root, in a directory user postgres cannot reach: a throwaway cluster leaves nothing behind",
  async (dir) => {
    const server = await startEmbeddedPostgres({
      dir: `${dir}/throwaway`,
      port: freePort(),
      database: "postgres",
      persistent: false,
    });
    const kept = server.dataDir;
    assert.ok(kept.startsWith(`${ROOT_STATE_DIR}/data-`), kept);
    await server.stop();
    await assert.rejects(() => Deno.lstat(kept), Deno.errors.NotFound);
    await assert.rejects(() => Deno.lstat(`${dir}/throwaway`), Deno.errors.NotFound);
  },
);

withClosedScratch(
  "as root, in a directory user postgres cannot reach: data already there is one line, two ways out",
  async (dir) => {
    const stuck = `${dir}/stuck`;
    await Deno.mkdir(stuck);
    await Deno.writeTextFile(`${stuck}/PG_VERSION`, "18\n");
    await assert.rejects(
      () => startEmbeddedPostgres({ dir: stuck, database: "annotations" }),
      (e: unknown) => {
        assert.ok(e instanceof EmbeddedPostgresError, String(e));
        assert.match(
          e.message,
          new RegExp(
            `^${stuck} holds data that user postgres, which runs PostgreSQL for root, cannot ` +
              `reach, as it cannot enter ` +
              `${dir}: run as the user who created it, or make the path enterable ` +
              `\\(chmod o\\+x ${dir}\\)$`,
          ),
        );
        return true;
      },
    );
  },
);

/** Whether this process may make a mount namespace (root, with unshare(1) and CAP_SYS_ADMIN). */
function canUnshare(): boolean {
  if (!ROOT) return false;
  try {
    return new Deno.Command("unshare", { args: ["-m", "true"], stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "a read-only /tmp: deno task dev starts all the same",
  ignore: !canUnshare(),
  sanitizeResources: false,
  async fn() {
    const s = await scratch();
    await Deno.chmod(s.dir, 0o755);
    try {
      // Only this process tree sees the read-only /tmp (a private mount namespace).
      const script = "mount -t tmpfs -o ro,size=1m tmpfs /tmp && touch /tmp/probe 2>/dev/null " +
        '&& exit 99; exec "$@"';
      const child = new Deno.Command("unshare", {
        args: [
          "-m",
          "sh",
          "-c",
          script,
          "sh",
          Deno.execPath(),
          "run",
          `--config=${ROOT_DIR}/deno.json`,
          ...devTaskFlags(),
          `${ROOT_DIR}/main.ts`,
        ],
        cwd: s.dir,
        clearEnv: true,
        env: { ...baseEnv(), APP_ENV: "development", HOST: "127.0.0.1", PORT: "0" },
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const lines: string[] = [];
      const done = Promise.all([readLines(child.stdout, lines), readLines(child.stderr, lines)]);
      const deadline = Date.now() + 60_000;
      let exited = false;
      child.status.then(() => exited = true);
      while (!lines.some((l) => l.includes('"msg":"listening"'))) {
        if (exited || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const listening = lines.some((l) => l.includes('"msg":"listening"'));
      if (!exited) child.kill("SIGTERM");
      const status = await child.status;
      await done;
      assert.notEqual(status.code, 99, "/tmp was writable: the test proves nothing");
      assert.ok(listening, lines.join("\n"));
      assert.equal(status.code, 0, lines.join("\n"));
    } finally {
      await s.cleanup();
    }
  },
});
