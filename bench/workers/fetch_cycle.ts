/**
 * Annotators as users write them (runs in a Worker): plain `fetch` with a bearer token header,
 * bodies made with JSON.stringify, answers read with `res.json()`, and connections left to
 * fetch's own keep-alive pool. Two loops:
 * - "two-request": claim (POST .../claims) -> submit one bbox (POST .../annotations), as
 *   bench/workers/http_cycle.ts does with the lean client;
 * - "fused": one claim to start, then each submit carries `"next": true` and its answer brings
 *   the next claim (`{annotation, next: ClaimedImage | null}`), one request a cycle.
 * Each stops when the shared budget of cycles is spent or nothing is left (204, or `next: null`).
 */
import { serveWorker, take } from "../lib/workers.ts";
import type { CycleResult } from "./http_cycle.ts";

export interface FetchCycleJob {
  base: string;
  datasetId: string;
  /** One bearer token per annotator this worker runs. */
  tokens: string[];
  /** Shared Int32 counter of cycles that may still start. */
  budget: SharedArrayBuffer;
  loop: "two-request" | "fused";
}

interface ClaimedImage {
  claim: { id: string; image_id: string };
}

class Annotator {
  readonly #auth: Record<string, string>;
  readonly #json: Record<string, string>;

  constructor(readonly job: FetchCycleJob, token: string, readonly out: CycleResult) {
    this.#auth = { authorization: `Bearer ${token}` };
    this.#json = { ...this.#auth, "content-type": "application/json" };
  }

  /** The next claim, or null when the queue is empty. */
  async claim(): Promise<ClaimedImage | null> {
    const res = await fetch(`${this.job.base}/api/v1/datasets/${this.job.datasetId}/claims`, {
      method: "POST",
      headers: this.#auth,
    });
    if (res.status === 204) {
      await res.body?.cancel();
      return null;
    }
    const answer = await res.json();
    if (res.status !== 201) throw new Error(`claim: HTTP ${res.status} ${JSON.stringify(answer)}`);
    return answer;
  }

  /**
   * Submits one bbox for `claimed`; with `next`, the next claim, or null when nothing is left. A
   * next claim that failed after the annotation was saved (`next_error`, e.g. 503 busy) is claimed
   * with claimNextImage, as the API says to (counted in `out.nextErrors`).
   */
  async submit(claimed: ClaimedImage, next: boolean): Promise<ClaimedImage | null> {
    const annotation = {
      claim_id: claimed.claim.id,
      labels: ["car"],
      shapes: [{
        type: "bbox",
        label: "car",
        x: 10 + this.out.cycles % 100,
        y: 20,
        width: 100,
        height: 50,
      }],
      ...(next ? { next: true } : {}),
    };
    const res = await fetch(
      `${this.job.base}/api/v1/images/${claimed.claim.image_id}/annotations`,
      { method: "POST", headers: this.#json, body: JSON.stringify(annotation) },
    );
    const answer = await res.json();
    if (res.status !== 201) throw new Error(`submit: HTTP ${res.status} ${JSON.stringify(answer)}`);
    if (!next) return null;
    if (answer.next === null && answer.next_error) {
      this.out.nextErrors = (this.out.nextErrors ?? 0) + 1;
      return await this.claim();
    }
    return answer.next;
  }

  async twoRequest(counter: Int32Array): Promise<void> {
    const { out } = this;
    while (take(counter)) {
      const t0 = performance.now();
      const claimed = await this.claim();
      if (!claimed) {
        out.drained++;
        return;
      }
      const t1 = performance.now();
      await this.submit(claimed, false);
      out.claimMs.push(t1 - t0);
      out.submitMs.push(performance.now() - t1);
      out.imageIds.push(claimed.claim.image_id);
      out.cycles++;
    }
  }

  /** A cycle is a submit; the budget is taken before it, so the last submit asks for no next. */
  async fused(counter: Int32Array): Promise<void> {
    const { out } = this;
    if (!take(counter)) return;
    let claimed = await this.claim();
    while (claimed) {
      const more = take(counter);
      const t0 = performance.now();
      const next = await this.submit(claimed, more);
      out.submitMs.push(performance.now() - t0);
      out.imageIds.push(claimed.claim.image_id);
      out.cycles++;
      if (!more) return;
      claimed = next;
    }
    out.drained++;
  }
}

serveWorker(
  async (job: FetchCycleJob) => {
    // Connections opened before the clock starts, one per annotator: fetch keeps them alive.
    await Promise.all(job.tokens.map(async () => {
      const res = await fetch(`${job.base}/healthz`);
      await res.body?.cancel();
      if (res.status !== 200) throw new Error(`/healthz: HTTP ${res.status}`);
    }));
    return job;
  },
  async (job) => {
    const out: CycleResult = { cycles: 0, claimMs: [], submitMs: [], imageIds: [], drained: 0 };
    const counter = new Int32Array(job.budget);
    await Promise.all(
      job.tokens.map((token) => {
        const a = new Annotator(job, token, out);
        return job.loop === "fused" ? a.fused(counter) : a.twoRequest(counter);
      }).map((p) =>
        p.catch((e) => {
          Atomics.store(counter, 0, 0);
          throw e;
        })
      ),
    );
    return out;
  },
);
