/**
 * The one configuration loader. Every setting comes from the environment (plus an optional `.env`
 * file, which never overrides a variable that is already set), is validated with zod once at
 * start-up, and a bad value stops the process with a message naming the variable.
 */
import { z } from "zod";

const intFrom = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/**
 * TLS to PostgreSQL, with libpq's names: `disable` (plain TCP), `require` (encrypted, the
 * certificate is not checked), `verify-full` (encrypted; the certificate must chain to
 * DB_SSLROOTCERT and name the host). libpq's `allow`, `prefer` and `verify-ca` are refused:
 * the first two may silently fall back to plain text, and dbmate's driver has no `prefer`.
 */
export const SSL_MODES = ["disable", "require", "verify-full"] as const;
export type SslMode = typeof SSL_MODES[number];

const secret32 = () =>
  z.string().refine((s) => new TextEncoder().encode(s).length >= 32, "must be at least 32 bytes")
    .optional();

/**
 * The secrets that may be given as a file instead, `<NAME>_FILE=/path` (Docker and Kubernetes
 * secrets mount one file per secret), so the value is not in the environment: `docker inspect`,
 * `/proc/<pid>/environ` and crash reports never show it. The file's content is the value, less
 * its trailing line breaks.
 */
export const FILE_VARIABLES = [
  "DATABASE_URL",
  "DB_PASSWORD",
  "AUTH_JWT_SECRET",
  "AUTH_JWT_SECRET_ACCEPTED",
  "ADMIN_API_KEY",
  "METRICS_TOKEN",
  "AWS_SECRET_ACCESS_KEY",
  "GCS_HMAC_SECRET",
] as const;

const filePaths = Object.fromEntries(
  FILE_VARIABLES.map((name) => [`${name}_FILE`, z.string().min(1).optional()]),
) as Record<`${typeof FILE_VARIABLES[number]}_FILE`, z.ZodOptional<z.ZodString>>;

export const EnvSchema = z.object({
  APP_ENV: z.enum(["development", "test", "production"]).default("development"),
  HOST: z.string().min(1).default("0.0.0.0"),
  PORT: intFrom(0, 65535).default(8000),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),

  DATABASE_URL: z.string().trim().optional().transform((v) => v || undefined).pipe(
    z.url({ protocol: /^postgres(ql)?$/, error: "must be a postgres:// or postgresql:// URL" })
      .optional(),
  ),
  DB_USER: z.string().optional(),
  DB_PASSWORD: z.string().optional(),
  DB_HOST: z.string().optional(),
  DB_PORT: intFrom(1, 65535).default(5432),
  DB_NAME: z.string().optional(),
  DB_POOL_MAX: intFrom(1, 1000).default(10),
  // While PostgreSQL restarts, a connection attempt can be accepted and never answered: a request
  // waits this long for it before its 503.
  DB_CONNECT_TIMEOUT_SECONDS: intFrom(1, 600).default(5),
  DB_STATEMENT_TIMEOUT_MS: intFrom(0, 3_600_000).default(30_000),
  /** Claims (of one dataset) and submits gathered into one statement at most (lib/db/batcher.ts). */
  DB_BATCH_MAX: intFrom(0, 1000).default(64),
  /** How long an idle lane waits for company once batches have had company (lib/db/batcher.ts). */
  DB_BATCH_LINGER_MS: intFrom(0, 50).default(1),
  DB_SSLMODE: z.enum(SSL_MODES).optional(),
  DB_SSLROOTCERT: z.string().min(1).optional(),

  /** Where the embedded development database (and other local state) lives. */
  DATA_DIR: z.string().min(1).default(".data"),
  /** Unset: chosen per data directory and remembered (lib/runtime/embedded_pg.ts). */
  EMBEDDED_DB_PORT: intFrom(1, 65535).optional(),

  BODY_LIMIT_BYTES: intFrom(1024, 1024 * 1024 * 1024).default(32 * 1024 * 1024),
  REQUEST_TIMEOUT_MS: intFrom(100, 3_600_000).default(30_000),
  METRICS_TOKEN: z.string().min(16, "must be at least 16 characters").optional(),
  SHUTDOWN_TIMEOUT_SECONDS: intFrom(0, 3600).default(10),
  SHUTDOWN_DELAY_SECONDS: intFrom(0, 300).default(0),

  AUTH_JWT_SECRET: secret32(),
  /**
   * Another secret whose tokens are accepted too, never used to sign: a rotation without a
   * window of refused tokens (docs/production.md, JWT secret rotation).
   */
  AUTH_JWT_SECRET_ACCEPTED: secret32(),
  AUTH_TOKEN_TTL_SECONDS: intFrom(60, 7 * 86400).default(3600),
  /** How long a user's role and disabled flag may be cached: a disabled user is refused within it. */
  AUTH_USER_CACHE_SECONDS: intFrom(0, 60).default(30),
  AUTH_JWKS_URL: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
  AUTH_ISSUER: z.string().min(1).optional(),
  AUTH_AUDIENCE: z.string().min(1).optional(),
  AUTH_ROLE_CLAIM: z.string().min(1).default("role"),
  // createToken looks up keys of at most 512 characters.
  ADMIN_API_KEY: z.string().min(32, "must be at least 32 characters")
    .max(512, "must be at most 512 characters").optional(),
  // `idp:` names belong to identity-provider users (lib/auth/tokens.ts EXTERNAL_NAME_PREFIX).
  ADMIN_NAME: z.string().min(1).max(200).refine(
    (name) => !name.startsWith("idp:"),
    'must not start with "idp:" (reserved for identity-provider users)',
  ).default("admin"),

  // Media (lib/media/): what browsers are sent to for each image's bytes.
  PUBLIC_URL: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
  CORS_ORIGINS: z.string().optional(),
  MEDIA_ORIGINS: z.string().optional(),
  MEDIA_LOCAL_ROOT: z.string().min(1).optional(),
  AWS_REGION: z.string().regex(/^[a-z0-9-]+$/, "must be a region name, e.g. eu-west-1").optional(),
  AWS_ENDPOINT_URL_S3: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
  S3_FORCE_PATH_STYLE: z.enum(["true", "false"]).default("false"),
  AWS_ACCESS_KEY_ID: z.string().optional(),
  AWS_SECRET_ACCESS_KEY: z.string().optional(),
  AWS_SESSION_TOKEN: z.string().optional(),
  GCS_HMAC_ACCESS_KEY_ID: z.string().optional(),
  GCS_HMAC_SECRET: z.string().optional(),

  /**
   * Seconds to wait before each retry of a failed webhook delivery; their count is the number of
   * retries. About 3 days in all (retryDelay in lib/webhooks/worker.ts).
   */
  WEBHOOK_RETRY_SCHEDULE: z.string().default(
    "5,300,1800,7200,18000,36000,36000,36000,36000,36000,36000",
  ).transform((text, ctx) => {
    const delays = text.split(",").map((s) => s.trim());
    if (
      delays.length > 100 ||
      delays.some((d) => !/^\d+(\.\d+)?$/.test(d) || Number(d) > 7 * 86400)
    ) {
      ctx.addIssue({
        code: "custom",
        message: "must be 1 to 100 comma-separated delays in seconds, each at most 604800 " +
          "(e.g. 5,300,1800)",
      });
      return z.NEVER;
    }
    return delays.map(Number);
  }),
  /**
   * Days the webhook history is kept: deliveries that ended (with their event's payload), from
   * the event, and the attempt log (lib/webhooks/worker.ts prunes them).
   */
  WEBHOOK_RETENTION_DAYS: intFrom(1, 3650).default(30),
  /** Unset: true in development only (lib/webhooks/targets.ts). */
  WEBHOOK_ALLOW_PRIVATE_TARGETS: z.enum(["true", "false"]).optional(),

  ...filePaths,
});

export type Env = z.infer<typeof EnvSchema>;

export interface Config {
  env: Env["APP_ENV"];
  host: string;
  port: number;
  logLevel: Env["LOG_LEVEL"];
  /**
   * `undefined` means "no database configured": development starts an embedded one. Otherwise a
   * libpq-style URL carrying `sslmode` (and `sslrootcert` for verify-full), which both
   * postgres.js (through lib/db/query.ts `connect`) and dbmate understand.
   */
  databaseUrl: string | undefined;
  db: {
    poolMax: number;
    connectTimeoutSeconds: number;
    statementTimeoutMs: number;
    /** Most claims or submits sent as one statement; 0: each alone. */
    batchMax: number;
    /** Milliseconds an idle lane waits for more items, while batches have had company; 0: none. */
    batchLingerMs: number;
    sslMode: SslMode;
    /** Absolute path of the CA bundle; set exactly when sslMode is `verify-full`. */
    sslRootCert: string | undefined;
  };
  dataDir: string;
  /** Undefined: the port DATA_DIR/postgres.port remembers, or the first free one from 54329. */
  embeddedDbPort: number | undefined;
  bodyLimitBytes: number;
  requestTimeoutMs: number;
  /** When set, GET /metrics needs `Authorization: Bearer <token>`. */
  metricsToken: string | undefined;
  shutdown: {
    /** After SIGTERM/SIGINT: how long to keep serving (readiness already 503) before closing. */
    delaySeconds: number;
    /** Then: how long in-flight requests may take to finish before they are cut off. */
    timeoutSeconds: number;
  };
  webhooks: {
    /** Seconds before each retry of a failed delivery (their count: the retries). */
    retrySchedule: number[];
    /** Days deliveries that ended, and attempts, are kept. */
    retentionDays: number;
    /**
     * Whether webhook URLs may point at loopback, private, link-local, CGNAT or metadata
     * addresses, and (in production) use http://.
     */
    allowPrivateTargets: boolean;
  };
  auth: {
    /** Undefined only outside production: the caller then generates and keeps one. */
    jwtSecret: string | undefined;
    /** Tokens signed with this are accepted too; nothing is signed with it. */
    jwtAcceptedSecret: string | undefined;
    tokenTtlSeconds: number;
    userCacheSeconds: number;
    /** An external identity provider whose tokens are accepted as well. */
    jwks: { url: string; issuer: string; audience: string; roleClaim: string } | undefined;
    adminApiKey: string | undefined;
    adminName: string;
  };
  media: MediaConfig;
}

/** Where image bytes come from (lib/media/); a scheme left undefined is not served. */
export interface MediaConfig {
  /** The server's own origin as browsers reach it, for file:// URLs; else the request's. */
  publicUrl: string | undefined;
  /** Origins whose pages may call the API from a browser (CORS). */
  corsOrigins: string[];
  /**
   * Origins of http(s):// image URIs (handed out as they are), which the annotator page may
   * show: its Content-Security-Policy names them (lib/media/origins.ts).
   */
  origins: string[];
  /** Absolute path under which file:// images are served. */
  localRoot: string | undefined;
  s3: {
    region: string;
    endpoint: string | undefined;
    forcePathStyle: boolean;
    /** Static keys; undefined: the AWS SDK's default credential chain. */
    credentials:
      | { accessKeyId: string; secretAccessKey: string; sessionToken?: string }
      | undefined;
  } | undefined;
  gcs: { accessKeyId: string; secret: string } | undefined;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/**
 * The value part of a `.env` line: a double-quoted string (escapes `\n`, `\t`, `\"`, `\\`), a
 * single-quoted one (taken literally), or bare text; either may be followed by ` # comment`. A
 * bare value's comment needs whitespace before the `#` (`a#b` is the value `a#b`); a quote that
 * is never closed is kept as part of a bare value.
 */
function dotEnvValue(raw: string): string {
  const quote = raw[0];
  if (quote === "'") {
    const end = raw.indexOf("'", 1);
    if (end > 0 && /^\s*(#.*)?$/.test(raw.slice(end + 1))) return raw.slice(1, end);
  } else if (quote === '"') {
    let value = "";
    for (let i = 1; i < raw.length; i++) {
      const ch = raw[i];
      if (ch === '"') {
        if (/^\s*(#.*)?$/.test(raw.slice(i + 1))) return value;
        break;
      }
      if (ch === "\\" && i + 1 < raw.length) {
        const next = raw[++i];
        value += next === "n" ? "\n" : next === "t" ? "\t" : next === "r" ? "\r" : next;
      } else {
        value += ch;
      }
    }
  }
  return raw.replace(/(^|\s+)#.*$/, "").trim();
}

/**
 * Parses `KEY=value` lines: blank lines and `#` comments are skipped, an `export ` prefix is
 * allowed, and values may be quoted and followed by a comment (see `dotEnvValue`). `KEY=` is the
 * empty string (which configuration treats as unset). Lines that are not assignments are ignored.
 */
export function parseDotEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    out[m[1]] = dotEnvValue(m[2]);
  }
  return out;
}

/** The process environment with `.env` (if present) underneath it. */
export function readEnv(dotEnvPath = ".env"): Record<string, string> {
  let fromFile: Record<string, string> = {};
  try {
    fromFile = parseDotEnv(Deno.readTextFileSync(dotEnvPath));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return { ...fromFile, ...Deno.env.toObject() };
}

/** Builds the database URL from `DATABASE_URL` or the `DB_*` variables (never both halves). */
function databaseUrlFrom(env: Env, problems: string[]): URL | undefined {
  if (env.DATABASE_URL) return new URL(env.DATABASE_URL);
  const parts = { DB_USER: env.DB_USER, DB_HOST: env.DB_HOST, DB_NAME: env.DB_NAME };
  const given = Object.entries(parts).filter(([, v]) => v);
  if (given.length === 0) return undefined;
  const missing = Object.entries(parts).filter(([, v]) => !v).map(([k]) => k);
  if (missing.length) {
    problems.push(
      `${missing.join(", ")}: required when any of DB_USER, DB_HOST, DB_NAME is set ` +
        `(or set DATABASE_URL instead)`,
    );
    return undefined;
  }
  const url = new URL("postgres://localhost");
  url.hostname = env.DB_HOST!;
  url.port = String(env.DB_PORT);
  url.username = encodeURIComponent(env.DB_USER!);
  url.password = encodeURIComponent(env.DB_PASSWORD ?? "");
  url.pathname = "/" + encodeURIComponent(env.DB_NAME!);
  return url;
}

/** The file's text, or why it cannot be read (`cannot read PATH: no such file`, …). */
function readConfigFile(path: string): { text: string } | { problem: string } {
  try {
    return { text: Deno.readTextFileSync(path) };
  } catch (e) {
    const reason = e instanceof Deno.errors.NotFound
      ? "no such file"
      : e instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : e instanceof Deno.errors.IsADirectory
      ? "is a directory"
      : (e as Error).message;
    return { problem: `cannot read ${path}: ${reason}` };
  }
}

/** Why a CA bundle cannot be used, or null when it holds at least one PEM certificate. */
function unusableCaBundle(path: string): string | null {
  const read = readConfigFile(path);
  if ("problem" in read) return read.problem;
  const { text } = read;
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    return `${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`;
  }
  return null;
}

/**
 * Settles TLS from DB_SSLMODE / DB_SSLROOTCERT and any `sslmode` / `sslrootcert` already in
 * DATABASE_URL (as RDS and most providers print them), then writes the result back into the
 * URL. The two sources may repeat each other but not disagree.
 */
function applyTls(
  url: URL,
  env: Env,
  problems: string[],
): { mode: SslMode; rootCert: string | undefined } {
  const fromUrl = url.searchParams.get("sslmode") ?? undefined;
  if (fromUrl !== undefined && !(SSL_MODES as readonly string[]).includes(fromUrl)) {
    problems.push(
      `DATABASE_URL: sslmode=${fromUrl} is not supported; use ${SSL_MODES.join(", ")} ` +
        `(in the URL or as DB_SSLMODE)`,
    );
  }
  if (fromUrl !== undefined && env.DB_SSLMODE && fromUrl !== env.DB_SSLMODE) {
    problems.push(
      `DB_SSLMODE: ${env.DB_SSLMODE} disagrees with sslmode=${fromUrl} in DATABASE_URL; set one`,
    );
  }
  const mode = (env.DB_SSLMODE ?? fromUrl ?? "disable") as SslMode;

  const certFromUrl = url.searchParams.get("sslrootcert") ?? undefined;
  if (certFromUrl !== undefined && env.DB_SSLROOTCERT && certFromUrl !== env.DB_SSLROOTCERT) {
    problems.push("DB_SSLROOTCERT: disagrees with sslrootcert in DATABASE_URL; set one");
  }
  const certPath = env.DB_SSLROOTCERT ?? certFromUrl;
  let rootCert: string | undefined;
  if (mode === "verify-full") {
    if (!certPath) {
      problems.push(
        "DB_SSLROOTCERT: required with DB_SSLMODE=verify-full: the CA bundle that signed the " +
          "server's certificate (for AWS RDS, global-bundle.pem)",
      );
    } else {
      rootCert = certPath.startsWith("/") ? certPath : `${Deno.cwd()}/${certPath}`;
      const problem = unusableCaBundle(rootCert);
      if (problem) problems.push(`DB_SSLROOTCERT: ${problem}`);
    }
  } else if (certPath) {
    problems.push(
      `DB_SSLROOTCERT: only used with DB_SSLMODE=verify-full (sslmode is ${mode}, which does ` +
        `not check the server's certificate)`,
    );
  }

  url.searchParams.set("sslmode", mode);
  url.searchParams.delete("sslrootcert");
  if (rootCert) url.searchParams.set("sslrootcert", rootCert);
  return { mode, rootCert };
}

/**
 * Replaces each `<NAME>_FILE` of FILE_VARIABLES in `vars` by `<NAME>` with the file's content.
 * Returns which names came from which file, for messages. Setting both, a file that cannot be
 * read, or an empty one is a problem (never a silent fallback to no secret).
 */
function readSecretFiles(vars: Record<string, string>, problems: string[]): Map<string, string> {
  const fromFile = new Map<string, string>();
  for (const name of FILE_VARIABLES) {
    const path = vars[`${name}_FILE`];
    if (path === undefined) continue;
    if (vars[name] !== undefined) {
      problems.push(`${name}, ${name}_FILE: both are set; set one`);
      continue;
    }
    const read = readConfigFile(path);
    if ("problem" in read) {
      problems.push(`${name}_FILE: ${read.problem}`);
      continue;
    }
    const value = read.text.replace(/[\r\n]+$/, "");
    if (!value) {
      problems.push(`${name}_FILE: ${path} is empty`);
      continue;
    }
    vars[name] = value;
    fromFile.set(name, path);
  }
  return fromFile;
}

/** What a process needs configured beyond the database: the server needs it all. */
export interface ConfigNeeds {
  /** False for the database scripts (db:*, user:create), which issue no tokens. */
  tokens?: boolean;
}

/** Validates `vars`; throws `ConfigError` listing every problem. */
export function parseConfig(
  vars: Record<string, string | undefined>,
  needs: ConfigNeeds = {},
): Config {
  // Empty strings mean "unset", as in most .env conventions.
  const cleaned: Record<string, string> = Object.fromEntries(
    Object.entries(vars).filter(([, v]) => v !== undefined && v !== ""),
  ) as Record<string, string>;
  const problems: string[] = [];
  const fromFile = readSecretFiles(cleaned, problems);
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    problems.push(
      ...parsed.error.issues.map((i) => {
        const name = i.path.join(".") || "(environment)";
        const file = fromFile.get(name);
        return `${name}${file ? ` (read from ${name}_FILE=${file})` : ""}: ${i.message}`;
      }),
    );
  }
  if (!parsed.success || problems.length) throw new ConfigError(problems);
  const env = parsed.data;
  // Settings that only mean something beside others: alone they would be silently ignored.
  const dbParts = ["DB_USER", "DB_HOST", "DB_NAME"].filter((k) => cleaned[k]);
  for (const k of ["DB_PASSWORD", "DB_PORT"]) {
    if (cleaned[k] && !dbParts.length && !env.DATABASE_URL) {
      problems.push(`${k}: set without DB_USER, DB_HOST and DB_NAME, so it would be ignored`);
    }
  }
  if (!env.AUTH_JWKS_URL) {
    for (const k of ["AUTH_ISSUER", "AUTH_AUDIENCE"]) {
      if (cleaned[k]) {
        problems.push(`${k}: applies to an identity provider; set AUTH_JWKS_URL too, or unset it`);
      }
    }
  }
  const url = databaseUrlFrom(env, problems);
  const tls = url
    ? applyTls(url, env, problems)
    : { mode: env.DB_SSLMODE ?? "disable", rootCert: undefined };
  const databaseUrl = url?.toString();
  if (!url && ((env.DB_SSLMODE ?? "disable") !== "disable" || env.DB_SSLROOTCERT)) {
    problems.push(
      "DB_SSLMODE, DB_SSLROOTCERT: apply only to a configured database (DATABASE_URL or DB_*); " +
        "the embedded development database has no TLS",
    );
  }
  if (!databaseUrl && env.APP_ENV === "production") {
    problems.push("DATABASE_URL: required in production (or set DB_USER, DB_HOST and DB_NAME)");
  }
  if (!env.AUTH_JWT_SECRET && env.APP_ENV === "production" && needs.tokens !== false) {
    problems.push("AUTH_JWT_SECRET: required in production (at least 32 bytes)");
  }
  if (env.AUTH_JWT_SECRET_ACCEPTED && env.AUTH_JWT_SECRET_ACCEPTED === env.AUTH_JWT_SECRET) {
    problems.push(
      "AUTH_JWT_SECRET_ACCEPTED: the same as AUTH_JWT_SECRET; set the other secret of the " +
        "rotation, or unset it",
    );
  }
  let jwks: Config["auth"]["jwks"];
  if (env.AUTH_JWKS_URL) {
    for (const name of ["AUTH_ISSUER", "AUTH_AUDIENCE"] as const) {
      if (!env[name]) problems.push(`${name}: required when AUTH_JWKS_URL is set`);
    }
    jwks = {
      url: env.AUTH_JWKS_URL,
      issuer: env.AUTH_ISSUER ?? "",
      audience: env.AUTH_AUDIENCE ?? "",
      roleClaim: env.AUTH_ROLE_CLAIM,
    };
  }
  const media = mediaConfig(env, problems);
  if (problems.length) throw new ConfigError(problems);
  return {
    env: env.APP_ENV,
    host: env.HOST,
    port: env.PORT,
    logLevel: env.LOG_LEVEL,
    databaseUrl,
    db: {
      poolMax: env.DB_POOL_MAX,
      connectTimeoutSeconds: env.DB_CONNECT_TIMEOUT_SECONDS,
      statementTimeoutMs: env.DB_STATEMENT_TIMEOUT_MS,
      batchMax: env.DB_BATCH_MAX,
      batchLingerMs: env.DB_BATCH_LINGER_MS,
      sslMode: tls.mode,
      sslRootCert: tls.rootCert,
    },
    dataDir: env.DATA_DIR,
    embeddedDbPort: env.EMBEDDED_DB_PORT,
    bodyLimitBytes: env.BODY_LIMIT_BYTES,
    requestTimeoutMs: env.REQUEST_TIMEOUT_MS,
    metricsToken: env.METRICS_TOKEN,
    shutdown: {
      delaySeconds: env.SHUTDOWN_DELAY_SECONDS,
      timeoutSeconds: env.SHUTDOWN_TIMEOUT_SECONDS,
    },
    webhooks: {
      retrySchedule: env.WEBHOOK_RETRY_SCHEDULE,
      retentionDays: env.WEBHOOK_RETENTION_DAYS,
      allowPrivateTargets: env.WEBHOOK_ALLOW_PRIVATE_TARGETS === undefined
        ? env.APP_ENV === "development"
        : env.WEBHOOK_ALLOW_PRIVATE_TARGETS === "true",
    },
    auth: {
      jwtSecret: env.AUTH_JWT_SECRET,
      jwtAcceptedSecret: env.AUTH_JWT_SECRET_ACCEPTED,
      tokenTtlSeconds: env.AUTH_TOKEN_TTL_SECONDS,
      userCacheSeconds: env.AUTH_USER_CACHE_SECONDS,
      jwks,
      adminApiKey: env.ADMIN_API_KEY,
      adminName: env.ADMIN_NAME,
    },
    media,
  };
}

/**
 * S3 is on once a region, an endpoint or keys are set (the SDK cannot sign without a region; an
 * S3-compatible endpoint defaults to us-east-1, as MinIO expects); without keys the SDK's default
 * chain finds credentials (task role, instance profile, web identity, shared files). Keys and
 * HMAC secrets come in pairs. MEDIA_LOCAL_ROOT defaults to DATA_DIR/media in development only.
 */
function mediaConfig(env: Env, problems: string[]): MediaConfig {
  const pair = (a: keyof Env, b: keyof Env) => {
    if (!env[a] !== !env[b]) problems.push(`${env[a] ? b : a}: required with ${env[a] ? a : b}`);
    return Boolean(env[a] && env[b]);
  };
  const keys = pair("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY");
  if (env.AWS_SESSION_TOKEN && !keys) {
    problems.push("AWS_SESSION_TOKEN: only used with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
  }
  if (keys && !env.AWS_REGION && !env.AWS_ENDPOINT_URL_S3) {
    problems.push("AWS_REGION: required with AWS_ACCESS_KEY_ID (the buckets' region)");
  }
  const originList = (name: "CORS_ORIGINS" | "MEDIA_ORIGINS") => {
    const origins = (env[name] ?? "").split(",").map((o) => o.trim()).filter(Boolean);
    for (const origin of origins) {
      if (!URL.canParse(origin) || new URL(origin).origin !== origin) {
        problems.push(`${name}: ${origin} is not an origin (scheme://host[:port], no path)`);
      }
    }
    return origins;
  };
  const corsOrigins = originList("CORS_ORIGINS");
  const root = env.MEDIA_LOCAL_ROOT ??
    (env.APP_ENV === "development" ? `${env.DATA_DIR}/media` : undefined);
  return {
    publicUrl: env.PUBLIC_URL?.replace(/\/+$/, ""),
    corsOrigins,
    origins: originList("MEDIA_ORIGINS"),
    localRoot: root && (root.startsWith("/") ? root : `${Deno.cwd()}/${root}`),
    s3: env.AWS_REGION || env.AWS_ENDPOINT_URL_S3 || keys
      ? {
        region: env.AWS_REGION ?? "us-east-1",
        endpoint: env.AWS_ENDPOINT_URL_S3,
        forcePathStyle: env.S3_FORCE_PATH_STYLE === "true",
        credentials: keys
          ? {
            accessKeyId: env.AWS_ACCESS_KEY_ID!,
            secretAccessKey: env.AWS_SECRET_ACCESS_KEY!,
            sessionToken: env.AWS_SESSION_TOKEN,
          }
          : undefined,
      }
      : undefined,
    gcs: pair("GCS_HMAC_ACCESS_KEY_ID", "GCS_HMAC_SECRET")
      ? { accessKeyId: env.GCS_HMAC_ACCESS_KEY_ID!, secret: env.GCS_HMAC_SECRET! }
      : undefined,
  };
}

/** Start-up entry point: reads the environment, or prints every problem and exits 1. */
export function loadConfig(needs: ConfigNeeds = {}): Config {
  try {
    return parseConfig(readEnv(), needs);
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(e.message);
      Deno.exit(1);
    }
    throw e;
  }
}
