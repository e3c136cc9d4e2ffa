/**
 * The bench's own logic: whose CPU a system's cycle is charged (bench/lib/cpu.ts), the efficiency
 * row and the table (bench/table.ts), the tuned PostgreSQL's settings (bench/lib/database.ts),
 * the fused cycle's detection from the spec (bench/lib/spec.ts), and the flags (bench/options.ts).
 */
import assert from "node:assert/strict";
import { type Cpu, cpuDelta, cpuPerCycle, machineCpu, sampleCpu } from "../bench/lib/cpu.ts";
import { tunedSettings } from "../bench/lib/database.ts";
import { fusedCycleSupport } from "../bench/lib/spec.ts";
import { parseArgs } from "../bench/options.ts";
import { cpuRow, type Ratio, scaleRows, tableLines } from "../bench/table.ts";
import { CreateAnnotation } from "../schemas/annotations.ts";
import { withApp } from "./harness.ts";

const cpu = (c: Partial<Cpu>): Cpu => ({ server: 0, pg: 0, loadgen: 0, reaped: 0, ...c });

Deno.test("our cycle is charged PostgreSQL and the server, never the load generator", () => {
  const c = cpu({ server: 0.3, pg: 0.4, loadgen: 0.2, reaped: 0.05 });
  assert.equal(machineCpu("http", c), 0.7);
});

Deno.test("the naive cycle by pgbench is charged PostgreSQL and pgbench, not the bench's process", () => {
  const c = cpu({ server: 0.01, pg: 0.9, loadgen: 0.02, reaped: 0.07 });
  assert.equal(machineCpu("pgbench", c), 0.97);
  // By the driver (no pgbench), the driver is the bench's own process.
  assert.equal(machineCpu("driver", c), 0.92);
});

Deno.test("a sample reads each party from one process table: trees for the server and the cluster", () => {
  const table = new Map([
    [1, { pid: 1, ppid: 0, ticks: 5, reapedTicks: 0 }],
    [100, { pid: 100, ppid: 1, ticks: 40, reapedTicks: 7 }], // this process
    [200, { pid: 200, ppid: 100, ticks: 30, reapedTicks: 0 }], // the server
    [300, { pid: 300, ppid: 1, ticks: 10, reapedTicks: 20 }], // the postmaster
    [301, { pid: 301, ppid: 300, ticks: 50, reapedTicks: 0 }], // a backend
  ]);
  const c = sampleCpu(table, { self: 100, server: 200, postmaster: 300 });
  assert.deepEqual(c, { server: 0.3, pg: 0.8, loadgen: 0.4, reaped: 0.07 });
  const none = sampleCpu(table, { self: 100 });
  assert.ok(Number.isNaN(none.server) && Number.isNaN(none.pg), "unknown parties read NaN");
});

Deno.test("CPU per cycle adds the runs' CPU and divides by their cycles, in milliseconds", () => {
  const runs = [
    { cycles: 1000, cpu: cpuDelta(cpu({}), cpu({ server: 0.3, pg: 0.5, loadgen: 0.1 })) },
    { cycles: 3000, cpu: cpu({ server: 0.9, pg: 1.1, loadgen: 0.3 }) },
  ];
  assert.deepEqual(cpuPerCycle("http", runs), {
    machine: 0.7,
    pg: 0.4,
    server: 0.3,
    pgbench: 0,
    loadgen: 0.1,
  });
});

function cycleFigures(machine: number, pg: number, server: number) {
  return {
    cycles: 3000,
    wall_s: 3,
    cycles_per_s: 1000,
    cpu_ms_per_cycle: { machine, pg, server, pgbench: 0, loadgen: 0.12 },
    wal_per_cycle: { kib: 14, full_page_images: 2 },
    rounds: [1000],
    claim: { p50_ms: 1, p99_ms: 2, max_ms: 3, count: 3000 },
    submit: { p50_ms: 1, p99_ms: 2, max_ms: 3, count: 3000 },
    next_errors: 0,
  };
}

function naiveFigures(machine: number, pg: number, pgbench: number) {
  return {
    runner: "pgbench",
    cycles: 3000,
    wall_s: 3,
    cycles_per_s: 1000,
    cpu_ms_per_cycle: { machine, pg, server: 0, pgbench, loadgen: 0.01 },
    wal_per_cycle: { kib: 16, full_page_images: 2 },
    rounds: [1000],
    latency_mean_ms: 30,
    statement_ms: [],
  };
}

Deno.test("the efficiency row is the naive cycle's machine CPU over ours, and must reach 1.0", () => {
  const won = cpuRow("cpu", cycleFigures(0.6, 0.35, 0.25), naiveFigures(0.9, 0.83, 0.07), "-");
  assert.equal(won.ratio, 1.5);
  assert.equal(won.pass, true);
  assert.equal(won.ours, "0.60 ms (PG 0.35 + server 0.25)");
  assert.equal(won.reference, "0.90 ms (PG 0.83 + pgbench 0.07)");
  const lost = cpuRow("cpu", cycleFigures(1.0, 0.6, 0.4), naiveFigures(0.9, 0.83, 0.07), "-");
  assert.equal(lost.ratio, 0.9);
  assert.equal(lost.pass, false);
});

Deno.test("the efficiency row is not measured when PostgreSQL runs elsewhere or a side is skipped", () => {
  const elsewhere = cpuRow(
    "cpu",
    cycleFigures(NaN, NaN, 0.25),
    naiveFigures(NaN, NaN, 0.07),
    "skipped",
  );
  assert.equal(elsewhere.ratio, null);
  assert.equal(elsewhere.pass, null);
  const skipped = cpuRow("cpu", cycleFigures(0.6, 0.35, 0.25), null, "skipped");
  assert.equal(skipped.pass, null);
  assert.equal(skipped.reference, "skipped");
});

Deno.test("the table says ok, MISSED, skipped, or nothing for a row without a target", () => {
  const row = (measure: string, pass: Ratio["pass"]): Ratio => ({
    measure,
    ours: "1",
    reference: "2",
    ratio: 0.5,
    must: ">= 1",
    aim: "",
    pass,
  });
  const lines = tableLines([
    row("a", true),
    row("b", false),
    row("c", null),
    row("d", undefined),
  ]);
  assert.equal(lines.length, 6);
  assert.match(lines[2], /^a .* ok$/);
  assert.match(lines[3], /^b .* MISSED$/);
  assert.match(lines[4], /^c .* skipped$/);
  assert.match(lines[5], /^d .*>= 1$/);
  assert.equal(new Set(lines.map((l) => l.indexOf("0.50"))).size, 2, "ratios in one column");
});

Deno.test("the scale row holds ours to 0.85; the naive cycle's own ratio sits beside it, untargeted", () => {
  const figures = (cycles_per_s: number, images: number) => ({
    images,
    cycles: 20_000,
    wall_s: 20_000 / cycles_per_s,
    cycles_per_s,
    cpu_ms_per_cycle: { machine: 0, pg: 0, server: 0, pgbench: 0, loadgen: 0 },
    wal_per_cycle: null,
    rounds: [cycles_per_s],
  });
  const opts = { images: 1_000_000, smallImages: 10_000 };
  const [ours, naive] = scaleRows(opts, {
    small: figures(2_800, 10_000),
    big: figures(2_240, 1_000_000),
    naive: {
      runner: "pgbench",
      small: figures(4_000, 10_000),
      big: figures(3_200, 1_000_000),
    },
  });
  assert.equal(ours.ratio, 0.8);
  assert.equal(ours.pass, false);
  assert.equal(naive.ratio, 0.8);
  assert.equal(naive.pass, undefined);
  assert.match(naive.ours, /^3,200 cycles\/s$/);
  assert.match(naive.measure, /naive SQL cycle \(pgbench\)/);
  const [held, without] = scaleRows(opts, {
    small: figures(2_800, 10_000),
    big: figures(2_520, 1_000_000),
    naive: null,
  });
  assert.equal(held.pass, true);
  assert.equal(without.ratio, null);
  assert.equal(without.ours, "skipped");
  const [skipped] = scaleRows(opts, null);
  assert.equal(skipped.pass, null);
});

Deno.test("the tuned PostgreSQL gets a quarter of the memory for shared_buffers, at most 512MB", () => {
  const gib = 1024 ** 3;
  const big = tunedSettings(24 * gib);
  assert.equal(big.shared_buffers, "512MB");
  assert.equal(big.effective_cache_size, "1536MB");
  assert.equal(big.wal_compression, "lz4");
  const small = tunedSettings(1 * gib);
  assert.equal(small.shared_buffers, "256MB");
  assert.equal(small.effective_cache_size, "768MB");
  assert.equal(tunedSettings(256 * 1024 ** 2).shared_buffers, "128MB", "never below the default");
  for (const k of ["fsync", "synchronous_commit", "full_page_writes"]) {
    assert.ok(!(k in big), `${k} stays as shipped (durable)`);
  }
});

const specWith = (body: unknown, components: Record<string, unknown> = {}) => ({
  openapi: "3.1.0",
  paths: {
    "/api/v1/images/{imageId}/annotations": {
      post: {
        operationId: "createAnnotation",
        requestBody: { content: { "application/json": { schema: body } } },
      },
    },
  },
  components: { schemas: components },
});

Deno.test("the fused cycle runs only when createAnnotation's body has `next`, however the schema is composed", () => {
  const plain = { type: "object", properties: { claim_id: { type: "string" } } };
  assert.equal(fusedCycleSupport(specWith(plain)).supported, false);
  assert.match(fusedCycleSupport(specWith(plain)).note, /takes no `next`/);
  const withNext = { type: "object", properties: { next: { type: "boolean" } } };
  assert.equal(fusedCycleSupport(specWith(withNext)).supported, true);
  const byRef = specWith({ $ref: "#/components/schemas/CreateAnnotation" }, {
    CreateAnnotation: { allOf: [plain, { $ref: "#/components/schemas/Next" }] },
    Next: withNext,
  });
  assert.equal(fusedCycleSupport(byRef).supported, true);
  assert.equal(fusedCycleSupport({ paths: {} }).supported, false);
  assert.match(fusedCycleSupport({ paths: {} }).note, /no createAnnotation/);
});

withApp(
  "the fused cycle's detection reads the server's own document as the schema says",
  async (h) => {
    const spec = await (await h.app.request("/api/openapi.json")).json();
    const support = fusedCycleSupport(spec);
    assert.doesNotMatch(support.note, /no createAnnotation/);
    assert.equal(support.supported, "next" in CreateAnnotation.shape);
  },
);

Deno.test("--quick runs on the embedded PostgreSQL only, the full run on both setups", () => {
  assert.deepEqual(parseArgs(["--quick"]).setups, ["embedded"]);
  assert.deepEqual(parseArgs([]).setups, ["embedded", "tuned"]);
  assert.deepEqual(parseArgs(["--quick", "--setups", "tuned"]).setups, ["tuned"]);
  assert.throws(() => parseArgs(["--setups", "rds"]), /unknown setup rds/);
  assert.deepEqual([...parseArgs(["--skip=fetch,mixed"]).skip], ["fetch", "mixed"]);
});

Deno.test("ours' warm-up takes images from its own big dataset, and the runs must still fit", () => {
  assert.equal(parseArgs([]).warmupCycles, 4_000);
  assert.equal(parseArgs(["--warmup-cycles", "100"]).warmupCycles, 100);
  // --quick: 100,000 images, 9,000 cycles and 3,000 at low concurrency.
  assert.equal(parseArgs(["--quick", "--warmup-cycles", "88000"]).warmupCycles, 88_000);
  assert.throws(
    () => parseArgs(["--quick", "--warmup-cycles", "88001"]),
    /--images 100000: the runs would use 100001 images/,
  );
});
