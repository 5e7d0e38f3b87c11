/**
 * When a route's object lets go of its broker connections: after `idle_disconnect_s` without a
 * request, once nothing is held for a client.
 *
 * On Cloudflare a Durable Object that holds an outbound socket cannot hibernate and is billed for
 * its wall-clock time; an idle object with no socket (and no pending timer) is evicted within a
 * couple of minutes and costs nothing. Closing the connections of an idle route is what lets
 * that happen; the next request connects again.
 *
 * "Nothing held" matters: messages taken for a client (leases, answers being written, deliveries
 * awaiting their settle) would go back to the queue with their channel, and a request waiting
 * for an async reply would lose it. The object says when it is quiet; until then the check is
 * made again.
 */
export class IdleDisconnect {
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastRequestAt = 0;
  /** Undefined: never (the object keeps its connections, see {@link KEEP_ALIVE_MS}). */
  #afterMs: number | undefined;
  /** Whether a request has told the setting yet (a settle after a restart has not). */
  #known = false;
  readonly #quiet: () => boolean;
  readonly #disconnect: () => void;

  /**
   * @param quiet - whether nothing is held for a client now (no request in flight, no lease, ...)
   * @param disconnect - closes the object's connections
   */
  constructor(quiet: () => boolean, disconnect: () => void) {
    this.#quiet = quiet;
    this.#disconnect = disconnect;
  }

  /**
   * A request came in or ended, on a route whose `idle_disconnect_s` is `afterS` ("never": keep
   * connected); without it, the setting last seen (settles and replies do not carry the route).
   */
  request(afterS?: number | "never"): void {
    this.#lastRequestAt = Date.now();
    if (afterS !== undefined) this.#afterMs = afterS === "never" ? undefined : afterS * 1000;
    if (!this.#known && afterS === undefined) return;
    this.#known = true;
    if (this.#afterMs === undefined) this.#stop();
    else this.#timer ??= setTimeout(() => this.#check(), this.#afterMs);
  }

  /** Whether the route said `never`: its object keeps its connections. */
  get keepsConnected(): boolean {
    return this.#known && this.#afterMs === undefined;
  }

  /** No more checks: the connections are gone, or kept for good. */
  #stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #check(): void {
    this.#timer = undefined;
    const afterMs = this.#afterMs;
    if (afterMs === undefined) return;
    const idleMs = Date.now() - this.#lastRequestAt;
    if (idleMs < afterMs) {
      this.#timer = setTimeout(() => this.#check(), afterMs - idleMs);
    } else if (!this.#quiet()) {
      // Held for a client (a lease of an hour, say): looked at again, as often as the setting or
      // every few seconds, so that the connections go soon after the last of it is settled.
      this.#timer = setTimeout(() => this.#check(), Math.min(afterMs, RECHECK_MS));
    } else {
      this.#disconnect();
    }
  }
}

/** How often an idle object that still holds something for a client looks again. */
const RECHECK_MS = 5_000;

/**
 * How often an object whose route keeps its connections (`idle_disconnect_s: never`) wakes itself
 * with an alarm: an object with no incoming request or alarm is evicted after 70–140 s, even with
 * an open socket (which holds it for 15 minutes at most), and an alarm counts as one.
 */
export const KEEP_ALIVE_MS = 60_000;
