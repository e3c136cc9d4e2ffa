/**
 * One ML client over HTTP (runs in a Worker): registerImages or setPriorities requests of up to
 * 10,000 items, one after another. Bodies are built while preparing, before the clock starts.
 */
import { prioritiesBody, registerBody } from "../lib/rows.ts";
import { serveWorker } from "../lib/workers.ts";

export type IngestJob =
  & { base: string; token: string; datasetId: string; batch: number }
  & (
    | { kind: "register"; tag: string; first: number; count: number }
    | { kind: "priorities"; ids: string[] }
  );

export interface IngestResult {
  requests: number;
  /** Images created, or priorities updated. */
  items: number;
  requestMs: number[];
}

serveWorker(
  (job: IngestJob) => {
    const bodies: string[] = [];
    if (job.kind === "register") {
      for (let at = 0; at < job.count; at += job.batch) {
        bodies.push(registerBody(job.tag, job.first + at, Math.min(job.batch, job.count - at)));
      }
    } else {
      for (let at = 0; at < job.ids.length; at += job.batch) {
        bodies.push(prioritiesBody(job.ids.slice(at, at + job.batch)));
      }
    }
    return { job, bodies };
  },
  async ({ job, bodies }) => {
    const out: IngestResult = { requests: 0, items: 0, requestMs: [] };
    const [method, path] = job.kind === "register"
      ? ["POST", `/api/v1/datasets/${job.datasetId}/images`]
      : ["PUT", `/api/v1/datasets/${job.datasetId}/priorities`];
    const headers = { authorization: `Bearer ${job.token}`, "content-type": "application/json" };
    for (const body of bodies) {
      const t0 = performance.now();
      const res = await fetch(`${job.base}${path}`, { method, headers, body });
      const answer = await res.json();
      out.requestMs.push(performance.now() - t0);
      if (res.status !== 200) {
        throw new Error(`${method} ${path}: HTTP ${res.status} ${JSON.stringify(answer)}`);
      }
      out.items += job.kind === "register" ? answer.created : answer.updated;
      out.requests++;
    }
    return out;
  },
);
