import { RouteFailureError } from "../contract/failures";

/** First wait in milliseconds after a failed connect (default 500). */
export const FIRST_BACKOFF_MS = 500;
/** Longest wait in milliseconds between connect attempts (default 5000, as amqp-client's session waits at most between reconnects here). */
export const MAX_BACKOFF_MS = 5000;

/**
 * When a route may try to connect again after a failed connect. Without it every request starts
 * its own connect: a route under load hammers an unreachable broker, or one that refuses its
 * login, thousands of times a second. Each failure doubles the wait (from {@link FIRST_BACKOFF_MS}
 * up to {@link MAX_BACKOFF_MS}), with jitter so that many routes (or shards) that failed together
 * do not come back in step; meanwhile requests get the last failure at once.
 */
export class ConnectBackoff {
  #failures = 0;
  #retryAt = 0;
  #last: RouteFailureError | undefined;

  /** The failure to answer with while waiting, or undefined when a connect may be tried now. */
  waiting(now = Date.now()): RouteFailureError | undefined {
    const last = this.#last;
    if (!last || now >= this.#retryAt) return undefined;
    const seconds = Math.max(1, Math.ceil((this.#retryAt - now) / 1000));
    return new RouteFailureError(
      last.kind,
      `${last.message} (next attempt in ${seconds} s)`,
      last.kind === "unavailable" ? seconds : undefined,
    );
  }

  /** Records a failed connect; the next attempt waits. */
  failed(error: RouteFailureError, now = Date.now()): void {
    this.#failures += 1;
    const ceiling = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** Math.min(this.#failures - 1, 16));
    // "Equal jitter": at least half the ceiling, so the wait still grows; the rest at random.
    this.#retryAt = now + ceiling / 2 + Math.random() * (ceiling / 2);
    this.#last = error;
  }

  /** A connect succeeded: the next failure starts from the first wait again. */
  succeeded(): void {
    this.#failures = 0;
    this.#retryAt = 0;
    this.#last = undefined;
  }
}
