/**
 * `deno run -A bench/experiments/pipeline_cost.ts [--requests N] [--concurrency N] [--rounds N]
 *   [--variant [ROOT@]NAME]... [--in-process ROUNDS]`: what the request pipeline costs the
 * server, without the database.
 *
 * Starts one server process per variant, each answering the annotator cycle's two requests
 * (a claim: POST, no body; a submit: POST with a one-bbox body) with a fixed answer of the real
 * size, and drives it with the bench's lean HTTP/1.1 client at `--concurrency` connections,
 * alternating claim and submit. Prints the server's CPU per request (from /proc), rounds
 * interleaved so the machine's other load hits every variant alike. Variants:
 *   bare   Deno.serve, JSON.parse of the body, JSON.stringify of the answer: the floor
 *   bare+id  the same with a second response header (x-request-id): Deno.serve has a fast path
 *          for an answer whose one header is its content-type
 *   app    the app's pipeline (lib/http/app.ts's middleware, the route-level security
 *          (lib/http/security.ts), the route's zod validation, c.json) with a stub token check
 *   app-X  the same without piece X (log, deadline, limit, vars, auth, valid), several joined
 *          by '-' (app-log-deadline)
 * `ROOT@NAME`: the variant as another checkout has it (a worktree, after `deno install` in it).
 * `--in-process ROUNDS`: no server and no network: `app.fetch` called in this process, 16 at a
 * time, wall time per request (steadier, but without Deno's HTTP server in the picture).
 */
import { z } from "@hono/zod-openapi";
import { createRoute } from "@hono/zod-openapi";
import { Http1Client } from "../lib/http1.ts";
import { all, flag, option } from "../lib/args.ts";
import { cpuSeconds } from "../../testkit/proc.ts";
import { freePort } from "../../lib/runtime/embedded_pg.ts";
import { createRouter } from "../../lib/http/router.ts";
import { BodyBudget, deadline, limitBody, requestLog } from "../../lib/http/middleware.ts";
import { secured } from "../../lib/http/security.ts";
import { makeOnError } from "../../lib/http/errors.ts";
import { jsonBody } from "../../lib/http/openapi.ts";
import { createLogger } from "../../lib/runtime/log.ts";
import { Metrics } from "../../lib/runtime/metrics.ts";
import { CreateAnnotation } from "../../schemas/annotations.ts";
import { idParam } from "../../schemas/common.ts";
import type { Principal } from "../../sql/users/queries.ts";

const CLAIM_ANSWER = {
  claim: {
    id: "1234567",
    image_id: "7654321",
    user_id: "12",
    created_at: "2026-12-06T12:00:00.000Z",
    expires_at: "2026-12-06T12:10:00.000Z",
  },
  image: {
    id: "7654321",
    dataset_id: "3",
    external_id: "img-0007654321",
    uri: "s3://bench-bucket/images/0007654321.jpg",
    width: 1920,
    height: 1080,
    priority: 17,
    metadata: {},
    status: "claimed",
    created_at: "2026-12-06T11:00:00.000Z",
  },
  predictions: [],
};
const SUBMIT_ANSWER = {
  id: "99887766",
  image_id: "7654321",
  dataset_id: "3",
  source: "human",
  author_id: "12",
  model: null,
  confidence: null,
  labels: ["car"],
  shapes: [{ type: "bbox", label: "car", x: 10, y: 20, width: 30, height: 40 }],
  status: "submitted",
  created_at: "2026-12-06T12:00:01.000Z",
};

function handler(variant: string): (req: Request) => Response | Promise<Response> {
  const drop = new Set(variant.split("-").slice(1));
  const json = (v: unknown, status: number) =>
    new Response(JSON.stringify(v), {
      status,
      headers: { "content-type": "application/json" },
    });
  if (variant === "bare" || variant === "bare+id") {
    const answer = variant === "bare"
      ? json
      : (v: unknown, status: number) =>
        new Response(JSON.stringify(v), {
          status,
          headers: { "content-type": "application/json", "x-request-id": crypto.randomUUID() },
        });
    return async (req) => {
      if (req.url.endsWith("/claims")) return answer(CLAIM_ANSWER, 201);
      const body = await req.json();
      if (!body.shapes) throw new Error("no shapes");
      return answer(SUBMIT_ANSWER, 201);
    };
  }
  const principal = { id: "12", role: "annotator", name: "a" } as unknown as Principal;
  const auth = { verify: (_token: string) => Promise.resolve(principal) };
  const app = createRouter();
  const log = createLogger("warn");
  if (!drop.has("log")) app.use("*", requestLog(log, new Metrics()));
  if (!drop.has("deadline")) app.use("/api/v1/*", deadline(30_000));
  if (!drop.has("limit")) app.use("/api/v1/*", limitBody(1 << 20));
  const bodyBudget = new BodyBudget(30_000);
  if (!drop.has("vars")) {
    app.use("/api/v1/*", async (c, next) => {
      // deno-lint-ignore no-explicit-any
      c.set("auth", auth as any);
      c.set("bodyBudget", bodyBudget);
      await next();
    });
  }
  const security = drop.has("auth") ? {} : secured("admin", "annotator");
  const params = (name: string) => z.object({ [name]: idParam(name) });
  const claimRoute = createRoute({
    method: "post",
    path: "/datasets/{datasetId}/claims",
    ...security,
    request: drop.has("valid") ? {} : { params: params("datasetId") },
    responses: { 201: { description: "claimed" } },
  });
  const submitRoute = createRoute({
    method: "post",
    path: "/images/{imageId}/annotations",
    ...security,
    request: drop.has("valid")
      ? {}
      : { params: params("imageId"), body: jsonBody(CreateAnnotation) },
    responses: { 201: { description: "created" } },
  });
  const api = createRouter()
    .openapi(claimRoute, (c) => c.json(CLAIM_ANSWER, 201))
    .openapi(submitRoute, async (c) => {
      // deno-lint-ignore no-explicit-any
      const body: any = drop.has("valid") ? await c.req.json() : c.req.valid("json" as never);
      if (!body.shapes) throw new Error("no shapes");
      return c.json(SUBMIT_ANSWER, 201);
    });
  app.route("/api/v1", api);
  app.onError(makeOnError(log));
  return (req) => app.fetch(req);
}

function serve(variant: string, port: number) {
  return Deno.serve({ port, hostname: "127.0.0.1", onListen() {} }, handler(variant));
}

const serving = option("--serve");
if (option("--in-process")) {
  const n = flag("--requests", 40_000);
  const variants = all("--variant");
  const body = JSON.stringify({
    claim_id: "1234567",
    labels: ["car"],
    shapes: [{ type: "bbox", label: "car", x: 10, y: 20, width: 30, height: 40 }],
  });
  const hs = variants.map((v) => ({ v, h: handler(v), t: [] as number[] }));
  const one = async (h: (r: Request) => Response | Promise<Response>, i: number) => {
    const req = i % 2
      ? new Request("http://127.0.0.1/api/v1/images/7654321/annotations", {
        method: "POST",
        headers: { authorization: "Bearer x", "content-type": "application/json" },
        body,
      })
      : new Request("http://127.0.0.1/api/v1/datasets/3/claims", {
        method: "POST",
        headers: { authorization: "Bearer x" },
      });
    const res = await h(req);
    if (res.status !== 201) throw new Error(await res.text());
    await res.text();
  };
  for (let r = 0; r < Number(option("--in-process")); r++) {
    for (const x of hs) {
      const t0 = performance.now();
      for (let i = 0; i < n; i += 16) {
        await Promise.all(Array.from({ length: 16 }, (_, j) => one(x.h, i + j)));
      }
      x.t.push((performance.now() - t0) * 1000 / n);
    }
  }
  for (const x of hs) {
    console.log(
      x.v.padEnd(24),
      x.t.map((t) => t.toFixed(1)).join(" "),
      "µs/request",
    );
  }
  Deno.exit(0);
}
if (serving) {
  serve(serving, Number(option("--port")));
} else {
  const requests = flag("--requests", 40_000);
  const concurrency = flag("--concurrency", 32);
  const rounds = flag("--rounds", 3);
  const variants = all("--variant").length ? all("--variant") : ["bare", "app"];
  const servers = await Promise.all(variants.map(async (variant) => {
    const port = await freePort();
    const child = new Deno.Command(Deno.execPath(), {
      // ROOT@variant: the variant of another checkout (a worktree, after `deno install` in it).
      args: [
        "run",
        "-A",
        variant.includes("@")
          ? `${variant.split("@")[0]}/bench/experiments/pipeline_cost.ts`
          : import.meta.filename!,
        "--serve",
        variant.split("@").at(-1)!,
        "--port",
        String(port),
      ],
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    for (let i = 0; i < 100; i++) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return { variant, port, child, us: [] as number[] };
  }));
  const submit = JSON.stringify({
    claim_id: "1234567",
    labels: ["car"],
    shapes: [{ type: "bbox", label: "car", x: 10, y: 20, width: 30, height: 40 }],
  });
  const headers = "authorization: Bearer x.y.z\r\n";
  const load = async (port: number, n: number) => {
    const clients = Array.from({ length: concurrency }, () => new Http1Client("127.0.0.1", port));
    let left = n;
    await Promise.all(clients.map(async (c) => {
      while (left > 0) {
        left -= 2;
        const a = await c.request("POST", "/api/v1/datasets/3/claims", headers);
        const b = await c.request(
          "POST",
          "/api/v1/images/7654321/annotations",
          headers + "content-type: application/json\r\n",
          submit,
        );
        if (a.status !== 201 || b.status !== 201) throw new Error(`${a.status} ${b.body}`);
      }
      c.close();
    }));
  };
  for (const s of servers) await load(s.port, 4_000);
  for (let r = 0; r < rounds; r++) {
    for (const s of r % 2 ? [...servers].reverse() : servers) {
      const cpu0 = cpuSeconds(s.child.pid);
      const t0 = performance.now();
      await load(s.port, requests);
      const us = (cpuSeconds(s.child.pid) - cpu0) * 1e6 / requests;
      s.us.push(us);
      console.log(
        `round ${r + 1} ${s.variant.padEnd(24)} ${us.toFixed(1)} µs CPU/request, ` +
          `${Math.round(requests / ((performance.now() - t0) / 1000))} requests/s`,
      );
    }
  }
  for (const s of servers) {
    const sorted = [...s.us].sort((a, b) => a - b);
    console.log(`${s.variant.padEnd(24)} median ${sorted[sorted.length >> 1].toFixed(1)} µs`);
    s.child.kill();
    await s.child.status;
  }
}
