/**
 * Reviewers over HTTP (runs in a Worker): each loops claimNextReview -> submitReview (accept),
 * with its own JWT and keep-alive connection, until the shared budget of reviews is spent or
 * nothing is left to review (204). Records each call's latency and the images reviewed.
 */
import { Http1Client } from "../lib/http1.ts";
import { serveWorker, take } from "../lib/workers.ts";

export interface ReviewJob {
  base: string;
  datasetId: string;
  /** One bearer token per reviewer this worker runs. */
  tokens: string[];
  /** Shared Int32 counter of reviews that may still start. */
  budget: SharedArrayBuffer;
}

export interface ReviewResult {
  cycles: number;
  claimMs: number[];
  submitMs: number[];
  imageIds: string[];
}

interface ReviewAnswer {
  review: { id: string; image_id: string };
}

async function reviewer(job: ReviewJob, client: Http1Client, token: string, out: ReviewResult) {
  const counter = new Int32Array(job.budget);
  const auth = `authorization: Bearer ${token}\r\n`;
  const json = `${auth}content-type: application/json\r\n`;
  const claimPath = `/api/v1/datasets/${job.datasetId}/reviews`;
  while (take(counter)) {
    const t0 = performance.now();
    const res = await client.request("POST", claimPath, auth);
    if (res.status === 204) return;
    const t1 = performance.now();
    if (res.status !== 201) {
      Atomics.store(counter, 0, 0);
      throw new Error(`claimNextReview: HTTP ${res.status} ${res.body}`);
    }
    const { id, image_id } = (JSON.parse(res.body) as ReviewAnswer).review;
    const t2 = performance.now();
    const sub = await client.request(
      "POST",
      `/api/v1/images/${image_id}/reviews`,
      json,
      `{"claim_id":"${id}","decision":"accept"}`,
    );
    const t3 = performance.now();
    if (sub.status !== 200) {
      Atomics.store(counter, 0, 0);
      throw new Error(`submitReview: HTTP ${sub.status} ${sub.body}`);
    }
    out.claimMs.push(t1 - t0);
    out.submitMs.push(t3 - t2);
    out.imageIds.push(image_id);
    out.cycles++;
  }
}

serveWorker(
  async (job: ReviewJob) => {
    const clients = job.tokens.map(() => Http1Client.fromUrl(job.base));
    await Promise.all(clients.map(async (c) => {
      const res = await c.request("GET", "/healthz", "");
      if (res.status !== 200) throw new Error(`/healthz: HTTP ${res.status}`);
    }));
    return { job, clients };
  },
  async ({ job, clients }) => {
    const out: ReviewResult = { cycles: 0, claimMs: [], submitMs: [], imageIds: [] };
    try {
      await Promise.all(clients.map((c, i) => reviewer(job, c, job.tokens[i], out)));
    } finally {
      clients.forEach((c) => c.close());
    }
    return out;
  },
);
