/** Structured logs: one JSON object per line on stdout (stderr for errors). */

export type Level = "debug" | "info" | "warn" | "error";
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** Whether lines of `level` are written (to skip building fields that would be dropped). */
  enabled(level: Level): boolean;
}

export type Sink = (line: string, level: Level) => void;

const defaultSink: Sink = (line, level) => {
  if (level === "error") console.error(line);
  else console.log(line);
};

export function createLogger(min: Level = "info", sink: Sink = defaultSink): Logger {
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[level] < RANK[min]) return;
    sink(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }), level);
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    enabled: (level) => RANK[level] >= RANK[min],
  };
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = createLogger("error", () => {});

/** Human-readable lines on stderr, for command-line tasks (their stdout is for results). */
export const cliLogger: Logger = {
  debug: () => {},
  info: (msg, fields) => console.error(`${msg}${fields ? ` ${JSON.stringify(fields)}` : ""}`),
  warn: (msg, fields) =>
    console.error(`warning: ${msg}${fields ? ` ${JSON.stringify(fields)}` : ""}`),
  error: (msg, fields) =>
    console.error(`error: ${msg}${fields ? ` ${JSON.stringify(fields)}` : ""}`),
  enabled: (level) => level !== "debug",
};
