import type { AMQPMessage } from "@cloudamqp/amqp-client";
import { RouteFailureError } from "../contract/failures";
import type { CancelTimer, ObjectTimers } from "../object-timers";

interface Pending {
  delivery: AMQPMessage;
  cancelTimer: CancelTimer;
  /** Gives back the room its body holds in the object's memory, once it is settled. */
  release: (() => void) | undefined;
}

/**
 * Deliveries taken without auto-ack, waiting for the Worker to say its response is ready. The
 * Worker settles each one by token: "ack" once the response is built, "requeue" if building it
 * failed. One that is not settled within the hold time (the Worker went away) is requeued, so a
 * delivery is never left unacknowledged on the broker.
 */
export class PendingDeliveries {
  readonly #pending = new Map<number, Pending>();
  #nextToken = 1;
  /** Each hold's end, on the object's timers (one per answer in flight). */
  readonly #timers: ObjectTimers;

  constructor(timers: ObjectTimers) {
    this.#timers = timers;
  }

  /** How many deliveries wait for their settle now. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Holds `delivery` until settled; requeues it after `holdMs`. Returns its token. `release` is
   * called once it is settled (or requeued): its answer is then out of the Worker's hands.
   */
  hold(delivery: AMQPMessage, holdMs: number, release?: () => void): number {
    const token = this.#nextToken++;
    const cancelTimer = this.#timers.after(holdMs, () => void this.settle(token, "requeue").catch(() => undefined));
    this.#pending.set(token, { delivery, cancelTimer, release });
    return token;
  }

  /**
   * Acknowledges the delivery, or rejects it back to the queue. Rejects with "unavailable" when
   * the broker can no longer take the acknowledgement (its channel or connection closed; the
   * broker then delivers the message again), and with "internal" for an unknown token.
   */
  async settle(token: number, outcome: "ack" | "requeue"): Promise<void> {
    const pending = this.#pending.get(token);
    if (!pending) throw new RouteFailureError("internal", "the message was already given back to the queue");
    this.#pending.delete(token);
    pending.cancelTimer();
    pending.release?.();
    try {
      await (outcome === "ack" ? pending.delivery.ack() : pending.delivery.nack(true));
    } catch {
      throw new RouteFailureError(
        "unavailable",
        "the connection to the broker was lost before the message was acknowledged; it stays in the queue",
      );
    }
  }
}
