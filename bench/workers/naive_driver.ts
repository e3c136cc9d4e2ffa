/**
 * The naive cycle through the driver (runs in a Worker), for machines without pgbench: the
 * statements of bench/naive_cycle.sql, run as pgbench runs them (`-M prepared`, each one
 * autocommitted, `:name` variables as parameters, `\gset` storing a row's columns), one
 * connection per client.
 */
import postgres from "postgres";
import { serveWorker, take } from "../lib/workers.ts";

export interface NaiveJob {
  url: string;
  script: string;
  /** pgbench's client ids of the clients this worker runs. */
  clientIds: number[];
  vars: Record<string, string>;
  budget: SharedArrayBuffer;
}

export interface NaiveResult {
  cycles: number;
  cycleMs: number[];
}

interface Command {
  text: string;
  /** Variable names, in $n order. */
  params: string[];
  gset: boolean;
}

/** pgbench's reading of a script: `--` lines dropped, `;` or `\gset` ends a command. */
export function parseScript(script: string): Command[] {
  const commands: Command[] = [];
  let lines: string[] = [];
  const end = (gset: boolean) => {
    const raw = lines.join("\n").trim().replace(/;$/, "");
    lines = [];
    if (!raw) return;
    const params: string[] = [];
    const text = raw.replace(/(?<!:):([A-Za-z_][A-Za-z0-9_]*)/g, (_, name: string) => {
      let i = params.indexOf(name);
      if (i < 0) i = params.push(name) - 1;
      return `$${i + 1}`;
    });
    commands.push({ text, params, gset });
  };
  for (const line of script.split("\n")) {
    const trimmed = line.trim();
    if (trimmed.startsWith("--") || !trimmed) continue;
    if (trimmed === "\\gset") {
      end(true);
      continue;
    }
    lines.push(line);
    if (trimmed.endsWith(";")) end(false);
  }
  end(false);
  return commands;
}

async function client(
  sql: postgres.Sql,
  commands: Command[],
  vars: Record<string, string>,
  counter: Int32Array,
  out: NaiveResult,
): Promise<void> {
  while (take(counter)) {
    const t0 = performance.now();
    for (const c of commands) {
      const rows = await sql.unsafe(c.text, c.params.map((p) => vars[p]), { prepare: true });
      if (c.gset) {
        if (rows.length !== 1) throw new Error(`expected one row, got ${rows.length}`);
        for (const [k, v] of Object.entries(rows[0])) vars[k] = String(v);
      }
    }
    out.cycleMs.push(performance.now() - t0);
    out.cycles++;
  }
}

serveWorker(
  async (job: NaiveJob) => {
    const commands = parseScript(job.script);
    const clients = job.clientIds.map((id) => ({
      sql: postgres(job.url, { max: 1, onnotice: () => {} }),
      vars: { ...job.vars, client_id: String(id) } as Record<string, string>,
    }));
    await Promise.all(clients.map((c) => c.sql`SELECT 1`));
    return { job, commands, clients };
  },
  async ({ job, commands, clients }) => {
    const out: NaiveResult = { cycles: 0, cycleMs: [] };
    const counter = new Int32Array(job.budget);
    try {
      await Promise.all(clients.map((c) => client(c.sql, commands, c.vars, counter, out)));
    } finally {
      await Promise.all(clients.map((c) => c.sql.end({ timeout: 1 })));
    }
    return out;
  },
);
