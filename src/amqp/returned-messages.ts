import type { AMQPMessage } from "@cloudamqp/amqp-client";

interface Watched {
  exchange: string;
  routingKey: string;
  body: Uint8Array;
  returned: boolean;
}

/**
 * Matches `basic.return`s to the mandatory publishes in flight on one connection. The broker
 * sends a message's return before its confirm on the same channel, and amqp-client hands both
 * over in that order, so by the time a publish's confirm arrives, its return (if any) has been
 * seen. A return carries no delivery tag; it is matched by exchange, routing key and body. Two
 * identical messages in flight are interchangeable: both are unroutable or neither is.
 */
export class ReturnedMessages {
  readonly #inFlight = new Set<Watched>();

  /** Starts watching for the return of one publish; call `stop` once it is confirmed or failed. */
  watch(exchange: string, routingKey: string, body: Uint8Array): { wasReturned: () => boolean; stop: () => void } {
    const watched: Watched = { exchange, routingKey, body, returned: false };
    this.#inFlight.add(watched);
    return { wasReturned: () => watched.returned, stop: () => this.#inFlight.delete(watched) };
  }

  /** amqp-client's `onreturn` hook for the publishing connection. */
  readonly onReturn = (message: AMQPMessage): void => {
    const body = message.body ?? new Uint8Array(0);
    for (const watched of this.#inFlight) {
      if (watched.returned || watched.exchange !== message.exchange || watched.routingKey !== message.routingKey) continue;
      if (sameBytes(watched.body, body)) {
        watched.returned = true;
        return;
      }
    }
  };
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
};
