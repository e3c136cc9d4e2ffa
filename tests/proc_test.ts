/**
 * testkit/proc.ts: reading /proc/<pid>/stat and adding up a process tree's CPU, the accounting
 * the bench's CPU per cycle rests on (bench/lib/cpu.ts).
 */
import assert from "node:assert/strict";
import { parseStat, processTable, type ProcStat, treeCpuSeconds } from "../testkit/proc.ts";
import { sleep } from "../testkit/time.ts";

/** A /proc/<pid>/stat line with these fields (the others zero). */
function statLine(pid: number, comm: string, ppid: number, ticks: number[]): string {
  const [utime, stime, cutime, cstime] = ticks;
  const fields = ["S", ppid, 0, 0, 0, 0, 0, 0, 0, 0, 0, utime, stime, cutime, cstime, 20, 0, 1];
  return `${pid} (${comm}) ${fields.join(" ")}\n`;
}

Deno.test("parseStat reads the parent and the ticks after a command name with spaces and brackets", () => {
  const p = parseStat(statLine(4242, "postgres: bench (x) idle)", 17, [120, 30, 7, 3]));
  assert.deepEqual(p, { pid: 4242, ppid: 17, ticks: 150, reapedTicks: 10 });
});

const table = (rows: ProcStat[]) => new Map(rows.map((r) => [r.pid, r]));

Deno.test("a tree's CPU is its root's and every live descendant's, own and reaped, and nobody else's", () => {
  const t = table([
    { pid: 10, ppid: 1, ticks: 100, reapedTicks: 50 },
    { pid: 11, ppid: 10, ticks: 20, reapedTicks: 5 },
    { pid: 12, ppid: 11, ticks: 7, reapedTicks: 0 },
    { pid: 13, ppid: 10, ticks: 3, reapedTicks: 0 },
    { pid: 20, ppid: 1, ticks: 900, reapedTicks: 0 },
  ]);
  assert.equal(treeCpuSeconds(t, 10), (150 + 25 + 7 + 3) / 100);
  assert.equal(treeCpuSeconds(t, 11), (25 + 7) / 100);
  assert.ok(Number.isNaN(treeCpuSeconds(t, 99)), "an unknown root is NaN, not 0");
});

Deno.test("a descendant that ends and is reaped moves to its parent's account and counts once", () => {
  const live = table([
    { pid: 10, ppid: 1, ticks: 100, reapedTicks: 0 },
    { pid: 11, ppid: 10, ticks: 40, reapedTicks: 6 },
    { pid: 12, ppid: 11, ticks: 6, reapedTicks: 0 },
  ]);
  // 12 ends and 11 waits for it; then 11 ends and 10 waits for it.
  const oneReaped = table([
    { pid: 10, ppid: 1, ticks: 100, reapedTicks: 0 },
    { pid: 11, ppid: 10, ticks: 40, reapedTicks: 12 },
  ]);
  const bothReaped = table([{ pid: 10, ppid: 1, ticks: 100, reapedTicks: 52 }]);
  assert.equal(treeCpuSeconds(oneReaped, 10), treeCpuSeconds(live, 10) + 0);
  assert.equal(treeCpuSeconds(bothReaped, 10), treeCpuSeconds(oneReaped, 10));
});

Deno.test("a real process's CPU is in its parent's tree while it runs and after it is reaped", async () => {
  // sh runs a subshell that is busy for about 0.3 s of CPU and then idle for 0.6 s, waits for
  // it, and idles 0.8 s more: the tree of sh is read with the subshell live and once reaped.
  // (The tree of sh, not of this process: other test files' children come and go here.)
  const sh = new Deno.Command("/bin/sh", {
    args: ["-c", "( i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 0.6 ); sleep 0.8"],
    stdout: "null",
  }).spawn();
  let busyTicks = 0;
  let live = NaN;
  let reaped = NaN;
  try {
    for (let waited = 0; waited < 20_000 && Number.isNaN(reaped); waited += 50) {
      await sleep(50);
      const t = processTable();
      const root = t.get(sh.pid);
      if (!root) break;
      const busy = [...t.values()].find((p) => p.ppid === sh.pid && p.ticks >= 5);
      if (busy && busy.ticks === busyTicks) live = treeCpuSeconds(t, sh.pid);
      if (busy) busyTicks = busy.ticks;
      if (!busy && busyTicks && root.reapedTicks >= busyTicks) reaped = treeCpuSeconds(t, sh.pid);
    }
  } finally {
    await sh.status;
  }
  assert.ok(busyTicks >= 5, `the subshell used ${busyTicks} ticks: too little to tell`);
  assert.ok(Number.isFinite(live), "the subshell was not seen idle before it ended");
  assert.ok(Number.isFinite(reaped), "the subshell was not seen reaped");
  // The same total, within the tick the kernel's rounding of user and system time may move.
  assert.ok(
    Math.abs(reaped - live) <= 0.02,
    `tree of sh: ${live} s with the subshell live, ${reaped} s once reaped`,
  );
});
