/** Most publishes one connection has sent and not yet had confirmed (default 256). */
const PUBLISH_WINDOW = 256;

interface Waiter {
  grant: () => void;
}

/** A place in the window, once granted; `release` gives it back (once). */
export interface WindowTicket {
  /** Resolves once the publish may be sent. */
  granted: Promise<void>;
  /** Granted as it was asked for: `granted` is already resolved, and need not be awaited. */
  immediate: boolean;
  /**
   * Gives the place back: after the confirm (or failure) of a sent publish, or to stop waiting.
   * Returns false when the place had not been granted yet (the waiter just leaves the line).
   */
  release(): boolean;
}

/** The `granted` of every ticket granted at once: one promise, not one per publish. */
const GRANTED = Promise.resolve();

/**
 * Bounds how many publishes one connection has in flight. Each one in flight holds its message
 * until it is written and a pending confirm until the broker answers; without a bound, one
 * 10,000-message batch, or a broker that stops confirming under load, lets that grow with the
 * load instead of with the window, and an isolate has 128 MB. Waiters are served in the order
 * they came, so a batch's messages go out in order and a single request is not starved by one.
 */
export class PublishWindow {
  #inFlight = 0;
  readonly #line: Waiter[] = [];

  constructor(readonly size = PUBLISH_WINDOW) {}

  /** Publishes holding a place now (sent, awaiting their confirm). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Asks for a place; await `granted`, and always `release` it. */
  enter(): WindowTicket {
    if (this.#inFlight < this.size && this.#line.length === 0) {
      // The usual case, kept cheap (one closure): it runs once per message published.
      this.#inFlight += 1;
      let released = false;
      return {
        granted: GRANTED,
        immediate: true,
        release: () => {
          if (released) return false;
          released = true;
          this.#give();
          return true;
        },
      };
    }
    let state: "waiting" | "granted" | "released" = "waiting";
    let waiter: Waiter | undefined;
    const granted = new Promise<void>((resolve) => {
      waiter = {
        grant: () => {
          state = "granted";
          resolve();
        },
      };
      this.#line.push(waiter);
    });
    return {
      granted,
      immediate: false,
      release: () => {
        if (state === "released") return false;
        const wasGranted = state === "granted";
        state = "released";
        if (wasGranted) this.#give();
        else if (waiter) this.#line.splice(this.#line.indexOf(waiter), 1);
        return wasGranted;
      },
    };
  }

  #give(): void {
    this.#inFlight -= 1;
    const next = this.#line.shift();
    if (next) {
      this.#inFlight += 1;
      next.grant();
    }
  }
}
