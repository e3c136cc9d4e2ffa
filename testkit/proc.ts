/**
 * What Linux's /proc says about a process: its memory (VmRSS, VmHWM), its CPU time, a
 * PostgreSQL cluster's CPU time, the machine's load. Each reader answers NaN (or [] for the
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

/** The fields of /proc/<pid>/stat after the command name (which may hold spaces and brackets). */
function statFields(pid: number | "self"): string[] | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

// Indexes into statFields (stat(5) numbers them from 1 with pid and comm first): ppid is field
// 4, utime 14, stime 15, cutime 16, cstime 17. Times are in clock ticks of 1/100 s.
const PPID = 1;
const UTIME = 11;
const STIME = 12;
const CUTIME = 13;
const CSTIME = 14;

/** User + system CPU seconds of a process ("self" for this one). */
export function cpuSeconds(pid: number | "self"): number {
  const f = statFields(pid);
  return f ? (Number(f[UTIME]) + Number(f[STIME])) / 100 : NaN;
}

/** CPU seconds of a process's children that have ended and been waited for. */
export function childrenCpuSeconds(pid: number | "self"): number {
  const f = statFields(pid);
  return f ? (Number(f[CUTIME]) + Number(f[CSTIME])) / 100 : NaN;
}

/**
 * CPU seconds used so far by a PostgreSQL cluster: its postmaster, its reaped children
 * (connections that ended) and its live children (backends, checkpointer, WAL writer, ...).
 */
export function clusterCpuSeconds(postmasterPid: number): number {
  const f = statFields(postmasterPid);
  if (!f) return NaN;
  let ticks = Number(f[UTIME]) + Number(f[STIME]) + Number(f[CUTIME]) + Number(f[CSTIME]);
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const c = statFields(Number(e.name));
    if (c && Number(c[PPID]) === postmasterPid) ticks += Number(c[UTIME]) + Number(c[STIME]);
  }
  return ticks / 100;
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
