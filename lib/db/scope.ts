/**
 * A request's hold on its queries. lib/http/app.ts runs each API request in a scope; when the
 * request's deadline passes it expires the scope: the queries it has running are cancelled
 * (PostgreSQL rolls each back) and any it starts afterwards fail at once with the same error, so a
 * timeout answer never hides a write that lands later. Found through async context, so query
 * functions need no extra argument.
 */
import { AsyncLocalStorage } from "node:async_hooks";

/** Something running on the database that can be cancelled: a query, or a batch of them. */
export interface Cancellable {
  cancel(): void;
}

const current = new AsyncLocalStorage<QueryScope>();

export class QueryScope {
  /** Set once the scope expired: the error its queries fail with. */
  expired: Error | null = null;
  /** Queries (or batches) running for this scope now. */
  inFlight = 0;
  readonly #running = new Set<Cancellable>();

  /** The scope governing queries started here, if any. */
  static current(): QueryScope | undefined {
    return current.getStore();
  }

  /** Runs `fn` with this scope governing every query it starts. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    return current.run(this, fn);
  }

  /** Counts `work` as running here until the returned function is called; expiring cancels it. */
  hold(work: Cancellable): () => void {
    this.inFlight++;
    this.#running.add(work);
    return () => {
      if (this.#running.delete(work)) this.inFlight--;
    };
  }

  /** Cancels what runs here and refuses what starts later, with `reason`. */
  expire(reason: Error): void {
    this.expired = reason;
    for (const work of this.#running) work.cancel();
  }
}
