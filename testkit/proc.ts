/**
 * What Linux's /proc says about a process: its memory (VmRSS, VmHWM), its CPU time, a process
 * tree's CPU time (a PostgreSQL cluster, a server and its children), the machine's load. Each reader answers NaN (or [] for the
 * load) when the file cannot be read: the process has ended, or this is not Linux.
 */

/** A `kB` field of /proc/<pid>/status (VmRSS, VmHWM, ...), in KiB. */
function statusKiB(pid: number, field: string): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

/** Resident memory now, MiB. */
export function rssMiB(pid: number): number {
  return statusKiB(pid, "VmRSS") / 1024;
}

/** Peak resident memory since the process started (VmHWM), MiB. */
export function peakRssMiB(pid: number): number {
  return statusKiB(pid, "VmHWM") / 1024;
}

/**
 * Resident memory now by kind, MiB: anonymous (heaps, buffers: what the program allocated),
 * file-backed (the executable's and libraries' pages that were touched) and shared memory.
 */
export function rssParts(pid: number): { anon: number; file: number; shmem: number } {
  return {
    anon: statusKiB(pid, "RssAnon") / 1024,
    file: statusKiB(pid, "RssFile") / 1024,
    shmem: statusKiB(pid, "RssShmem") / 1024,
  };
}

/** The fields of /proc/<pid>/stat after the command name (which may hold spaces and brackets). */
function fieldsOf(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

function statFields(pid: number | "self"): string[] | undefined {
  try {
    return fieldsOf(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return undefined;
  }
}

// Indexes into statFields (stat(5) numbers them from 1 with pid and comm first): ppid is field
// 4, utime 14, stime 15, cutime 16, cstime 17. Times are in clock ticks of 1/100 s (USER_HZ).
const PPID = 1;
const UTIME = 11;
const STIME = 12;
const CUTIME = 13;
const CSTIME = 14;
const TICKS_PER_S = 100;

/** A process's parent and CPU clock ticks, from one line of /proc/<pid>/stat. */
export interface ProcStat {
  pid: number;
  ppid: number;
  /** Its own user + system ticks (all its threads). */
  ticks: number;
  /** Ticks of its children that ended and were waited for (cutime + cstime). */
  reapedTicks: number;
}

/** Parses the text of /proc/<pid>/stat. */
export function parseStat(stat: string): ProcStat {
  const f = fieldsOf(stat);
  return {
    pid: Number(stat.slice(0, stat.indexOf(" "))),
    ppid: Number(f[PPID]),
    ticks: Number(f[UTIME]) + Number(f[STIME]),
    reapedTicks: Number(f[CUTIME]) + Number(f[CSTIME]),
  };
}

/** User + system CPU seconds of a process ("self" for this one). */
export function cpuSeconds(pid: number | "self"): number {
  const f = statFields(pid);
  return f ? (Number(f[UTIME]) + Number(f[STIME])) / TICKS_PER_S : NaN;
}

/** CPU seconds of a process's children that have ended and been waited for. */
export function childrenCpuSeconds(pid: number | "self"): number {
  const f = statFields(pid);
  return f ? (Number(f[CUTIME]) + Number(f[CSTIME])) / TICKS_PER_S : NaN;
}

/** Every process on the machine now, by pid (those that end while it is read are left out). */
export function processTable(): Map<number, ProcStat> {
  const table = new Map<number, ProcStat>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      table.set(Number(e.name), parseStat(Deno.readTextFileSync(`/proc/${e.name}/stat`)));
    } catch {
      // Ended meanwhile.
    }
  }
  return table;
}

/**
 * CPU seconds used so far by a process tree: `root` and every live descendant, each with its own
 * ticks and those of its children already reaped. When a child ends and its parent waits for it,
 * the kernel adds the child's own and reaped ticks to the parent's reaped ticks, so the sum counts
 * each process once whether it is still running or not. NaN when `root` is not in the table.
 */
export function treeCpuSeconds(table: Map<number, ProcStat>, root: number): number {
  if (!table.has(root)) return NaN;
  const children = new Map<number, number[]>();
  for (const p of table.values()) {
    const siblings = children.get(p.ppid);
    if (siblings) siblings.push(p.pid);
    else children.set(p.ppid, [p.pid]);
  }
  let ticks = 0;
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop()!;
    const p = table.get(pid)!;
    ticks += p.ticks + p.reapedTicks;
    stack.push(...(children.get(pid) ?? []));
  }
  return ticks / TICKS_PER_S;
}

/**
 * CPU seconds used so far by a PostgreSQL cluster: its postmaster and all its processes, live
 * (backends, checkpointer, WAL writer, autovacuum, ...) or ended (connections that closed).
 */
export function clusterCpuSeconds(postmasterPid: number): number {
  return treeCpuSeconds(processTable(), postmasterPid);
}

/**
 * The postmaster of a PostgreSQL backend (`SELECT pg_backend_pid()`), if that backend is a
 * process on this machine: its parent. Undefined for a server elsewhere.
 */
export function postmasterOf(backendPid: number): number | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${backendPid}/stat`);
    if (!stat.includes("(postgres)")) return undefined;
  } catch {
    return undefined;
  }
  const f = statFields(backendPid);
  return f ? Number(f[PPID]) : undefined;
}

/** The 1-, 5- and 15-minute load averages of the machine, for the record. */
export function loadAverage(): number[] {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).map(Number);
  } catch {
    return [];
  }
}
