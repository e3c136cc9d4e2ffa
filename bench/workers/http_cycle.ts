/**
 * Annotators over HTTP with the lean client (runs in a Worker): each loops claim -> submit one
 * bbox, with its own JWT and its own keep-alive connection (bench/lib/http1.ts), until the shared
 * budget of cycles is spent or nothing is left (204). Records each claim's and each submit's
 * latency, and the image ids it was handed. The same loop as users write it, with `fetch`, is
 * bench/workers/fetch_cycle.ts.
 */
import { Http1Client } from "../lib/http1.ts";
import { serveWorker, take } from "../lib/workers.ts";

export interface CycleJob {
  base: string;
  datasetId: string;
  /** One bearer token per annotator this worker runs. */
  tokens: string[];
  /** Shared Int32 counter of cycles that may still start. */
  budget: SharedArrayBuffer;
}

export interface CycleResult {
  cycles: number;
  /** Each claim's latency (none in the fused cycle, where the submit brings the next claim). */
  claimMs: number[];
  submitMs: number[];
  imageIds: string[];
  /** Annotators that stopped on 204 (nothing left). */
  drained: number;
  /** Fused cycle: submits whose next claim failed (`next_error`) and was claimed apart. */
  nextErrors?: number;
}

interface ClaimAnswer {
  claim: { id: string; image_id: string };
}

type Send = (method: string, path: string, body?: string) => Promise<{
  status: number;
  body: string;
}>;

function sender(job: CycleJob, token: string): { send: Send; close(): void } {
  const client = Http1Client.fromUrl(job.base);
  const auth = `authorization: Bearer ${token}\r\n`;
  const json = `${auth}content-type: application/json\r\n`;
  return {
    send: (method, path, body) =>
      client.request(method, path, body === undefined ? auth : json, body),
    close: () => client.close(),
  };
}

async function annotator(job: CycleJob, send: Send, out: CycleResult): Promise<void> {
  const counter = new Int32Array(job.budget);
  const claimPath = `/api/v1/datasets/${job.datasetId}/claims`;
  while (take(counter)) {
    const t0 = performance.now();
    const res = await send("POST", claimPath);
    if (res.status === 204) {
      out.drained++;
      return;
    }
    const t1 = performance.now();
    if (res.status !== 201) {
      Atomics.store(counter, 0, 0);
      throw new Error(`claim: HTTP ${res.status} ${res.body}`);
    }
    const { id: claimId, image_id: imageId } = (JSON.parse(res.body) as ClaimAnswer).claim;
    const body = `{"claim_id":"${claimId}","labels":["car"],"shapes":[{"type":"bbox",` +
      `"label":"car","x":${10 + out.cycles % 100},"y":20,"width":100,"height":50}]}`;
    const t2 = performance.now();
    const sub = await send("POST", `/api/v1/images/${imageId}/annotations`, body);
    const t3 = performance.now();
    if (sub.status !== 201) {
      Atomics.store(counter, 0, 0);
      throw new Error(`submit: HTTP ${sub.status} ${sub.body}`);
    }
    out.claimMs.push(t1 - t0);
    out.submitMs.push(t3 - t2);
    out.imageIds.push(imageId);
    out.cycles++;
  }
}

serveWorker(
  async (job: CycleJob) => {
    // One keep-alive connection per annotator, opened before the clock starts.
    const senders = job.tokens.map((t) => sender(job, t));
    await Promise.all(senders.map(async (s) => {
      const res = await s.send("GET", "/healthz");
      if (res.status !== 200) throw new Error(`/healthz: HTTP ${res.status}`);
    }));
    return { job, senders };
  },
  async ({ job, senders }) => {
    const out: CycleResult = { cycles: 0, claimMs: [], submitMs: [], imageIds: [], drained: 0 };
    try {
      await Promise.all(senders.map((s) => annotator(job, s.send, out)));
    } finally {
      senders.forEach((s) => s.close());
    }
    return out;
  },
);
