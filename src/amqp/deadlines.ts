import { RouteFailureError, type FailureKind } from "../contract/failures";

interface Pending {
  deadline: number;
  expire: () => void;
}

/** How often, in milliseconds, deadlines are checked: the precision of every timeout (default 100). */
export const SWEEP_INTERVAL_MS = 100;

/**
 * The deadlines of one route object's broker operations. Every operation goes through
 * {@link within}: a dead peer or a blocked connection must turn into an answer, never a request
 * that hangs.
 *
 * One interval checks every deadline, instead of a timer and a `Promise.race` per operation:
 * measured in workerd, those left about 150 bytes behind per publish, so a busy route's memory
 * grew without bound; with one sweeper it stays flat. The price is precision: a timeout fires up
 * to {@link SWEEP_INTERVAL_MS} late. One instance per Durable Object, never shared: a timer must
 * only settle promises of the object whose I/O context created it.
 */
export class Deadlines {
  readonly #pending = new Set<Pending>();
  #sweeper: ReturnType<typeof setInterval> | undefined;

  /**
   * Settles like `work`, or rejects with a {@link RouteFailureError} of `kind` after `ms`. The
   * message may be given as a function, called only if the deadline passes: on a path that runs
   * for every message, building the text each time costs more than the rest of the deadline.
   */
  within<T>(work: Promise<T>, ms: number, kind: FailureKind, message: string | (() => string)): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = {
        deadline: Date.now() + ms,
        expire: () => reject(new RouteFailureError(kind, typeof message === "string" ? message : message())),
      };
      this.#pending.add(entry);
      this.#sweeper ??= setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS);
      work.then(
        (value) => {
          this.#pending.delete(entry);
          resolve(value);
        },
        (error: unknown) => {
          this.#pending.delete(entry);
          // Passed on as the work rejected, whatever it was: callers sort amqp-client's errors.
          // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
          reject(error);
        },
      );
    });
  }

  #sweep(): void {
    const now = Date.now();
    for (const entry of this.#pending) {
      if (entry.deadline > now) continue;
      this.#pending.delete(entry);
      entry.expire();
    }
    if (this.#pending.size === 0) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }
}
