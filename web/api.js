/**
 * The page's API client. The bearer token lives in sessionStorage only (gone with the tab, never
 * shared with other tabs or kept on disk); every request reads it from there. A 401 asks
 * `onUnauthorized` to sign in again and then repeats the request, so whatever waits on it (a
 * submit with shapes on screen) simply carries on. 503s are retried with a backoff by the calls
 * that are safe to repeat (claims, renewals, submits: a submit repeated after it landed answers
 * 409 claim_completed).
 */

const TOKEN_KEY = "annotator.token";
const API = "/api/v1";
/** Pauses before each retry of a 503, in ms: about 7 s in all, then the error is shown. */
const RETRY_MS = [250, 500, 1000, 2000, 3500];

export class ApiError extends Error {
  /**
   * @param {number} status the HTTP status; 0 when the server could not be reached
   * @param {string} code the error's code (`claim_expired`, …)
   * @param {string} message for people
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The token in sessionStorage, with when it expires (ms since the epoch, the page's clock). */
export const session = {
  get() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(TOKEN_KEY) ?? "null");
      return saved && typeof saved.token === "string" ? saved : null;
    } catch {
      return null;
    }
  },
  set(token, expiresInSeconds) {
    const expiresAt = Date.now() + expiresInSeconds * 1000;
    sessionStorage.setItem(TOKEN_KEY, JSON.stringify({ token, expiresAt }));
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * @param {{ onUnauthorized: () => Promise<void> }} options `onUnauthorized` resolves once the
 *   person has signed in again.
 */
export function createApi({ onUnauthorized }) {
  // The server's clock minus the page's, from the Date header of the latest answer: leases are
  // timed by the server, and the two clocks may disagree by minutes.
  let clockOffset = 0;

  async function send(method, path, body) {
    const headers = {};
    const token = session.get()?.token;
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    let res;
    try {
      res = await fetch(API + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch {
      throw new ApiError(0, "network", "The server could not be reached. Check the connection.");
    }
    const date = Date.parse(res.headers.get("date") ?? "");
    if (!Number.isNaN(date)) clockOffset = date - Date.now();
    const text = await res.text();
    let json = null;
    if (text && res.headers.get("content-type")?.includes("application/json")) {
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
    }
    return { status: res.status, json };
  }

  /**
   * The answer's JSON (null for 204), or an ApiError. `retry503`: repeat a 503 a few times.
   * A 401 signs in again and repeats the request, whatever it was.
   */
  async function request(method, path, body, { retry503 = false } = {}) {
    for (let attempt = 0;; attempt++) {
      const { status, json } = await send(method, path, body);
      if (status === 401 && path !== "/auth/token") {
        session.clear();
        await onUnauthorized();
        continue;
      }
      if (status === 503 && retry503 && attempt < RETRY_MS.length) {
        await sleep(RETRY_MS[attempt]);
        continue;
      }
      if (status >= 400) {
        const error = json?.error;
        throw new ApiError(
          status,
          error?.code ?? "error",
          error?.message ?? `The server answered ${status}.`,
        );
      }
      return { status, json };
    }
  }

  return {
    /** The server's current time, in ms since the epoch. */
    serverNow: () => Date.now() + clockOffset,

    /** Exchanges an API key for a token (no sign-in loop: a refused key is the answer). */
    async createToken(apiKey) {
      const { json } = await request("POST", "/auth/token", { api_key: apiKey });
      return json;
    },
    async me() {
      return (await request("GET", "/me")).json;
    },
    async datasets() {
      return (await request("GET", "/datasets")).json.items;
    },
    async stats(datasetId) {
      return (await request("GET", `/datasets/${datasetId}/stats`)).json;
    },
    /** The next ClaimedImage, or null when nothing is left for this annotator (204). */
    async claim(datasetId) {
      const { status, json } = await request("POST", `/datasets/${datasetId}/claims`, undefined, {
        retry503: true,
      });
      return status === 204 ? null : json;
    },
    async renew(claimId) {
      return (await request("POST", `/claims/${claimId}/renew`, undefined, { retry503: true }))
        .json;
    },
    /** Gives the claim back; `skip`: never offer its image to this annotator again. */
    async release(claimId, { skip = false } = {}) {
      await request("DELETE", `/claims/${claimId}${skip ? "?skip=true" : ""}`, undefined, {
        retry503: true,
      });
    },
    /**
     * Submits and claims the next image in one request: `{annotation, next, next_error?}`.
     */
    async submit(imageId, body) {
      return (await request("POST", `/images/${imageId}/annotations`, { ...body, next: true }, {
        retry503: true,
      })).json;
    },
  };
}
