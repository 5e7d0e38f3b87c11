import type { AMQPChannel } from "@cloudamqp/amqp-client";

/** A channel lent to one operation; `release` gives it back (once), or leaves the line if it was not granted yet. */
export interface ChannelLease {
  granted: Promise<AMQPChannel>;
  release(): void;
}

interface Waiter {
  grant: () => void;
}

/**
 * Channels lent to one operation at a time, for operations whose failure the broker answers by
 * closing the channel (a passive declare of a queue that does not exist, a publish to an exchange
 * that does not exist or is internal). On a channel of its own, such a failure is the failure of
 * that operation alone; on a channel shared with other requests it would fail every operation in
 * flight on it, each reported as if it were its own.
 *
 * At most `size` channels are open or opening at once; further leases wait in the order they
 * came. A channel the broker closed is dropped, and the next lease opens a fresh one.
 */
export class ChannelPool {
  readonly #idle: AMQPChannel[] = [];
  readonly #line: Waiter[] = [];
  #lent = 0;

  /**
   * @param size - most channels lent at once
   * @param open - opens a channel on the current connection (with confirms on, for publishing)
   */
  constructor(
    readonly size: number,
    readonly open: () => Promise<AMQPChannel>,
  ) {}

  lease(): ChannelLease {
    let state: "waiting" | "granted" | "released" = "waiting";
    // Read through a function: the state changes while the lease awaits.
    const released = () => state === "released";
    let channel: AMQPChannel | undefined;
    let waiter: Waiter | undefined;
    const slot =
      this.#lent < this.size && this.#line.length === 0
        ? ((this.#lent += 1), Promise.resolve())
        : new Promise<void>((resolve) => {
            waiter = { grant: resolve };
            this.#line.push(waiter);
          });
    const abandoned = () => new Error("the channel lease was released before it was granted");
    const granted = slot.then(async () => {
      // Released while it waited for its slot: the slot goes on to the next in line.
      if (released()) {
        this.#giveBack(undefined);
        throw abandoned();
      }
      state = "granted";
      let opened: AMQPChannel;
      try {
        opened = await this.#channel();
      } catch (error) {
        state = "released";
        this.#giveBack(undefined);
        throw error;
      }
      channel = opened;
      // Released while the channel was opening.
      if (released()) {
        this.#giveBack(opened);
        throw abandoned();
      }
      return opened;
    });
    granted.catch(() => undefined);
    return {
      granted,
      release: () => {
        if (state === "released") return;
        const wasGranted = state === "granted";
        state = "released";
        if (!wasGranted) {
          // Still in line: leave it. (A slot already handed over is given back once granted sees the release.)
          const index = waiter ? this.#line.indexOf(waiter) : -1;
          if (index >= 0) this.#line.splice(index, 1);
          return;
        }
        // Granted, but the channel may still be opening: given back once it is.
        if (channel) this.#giveBack(channel);
      },
    };
  }

  async #channel(): Promise<AMQPChannel> {
    for (let idle = this.#idle.pop(); idle; idle = this.#idle.pop()) if (!idle.closed) return idle;
    return this.open();
  }

  #giveBack(channel: AMQPChannel | undefined): void {
    if (channel && !channel.closed && this.#idle.length < this.size) this.#idle.push(channel);
    const next = this.#line.shift();
    if (next) next.grant();
    else this.#lent -= 1;
  }
}
