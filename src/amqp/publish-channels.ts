import type { AMQPChannel, AMQPSession } from "@cloudamqp/amqp-client";
import { ChannelPool, type ChannelLease } from "./channel-pool";
import { NameCache } from "../name-cache";
import { causeOf, onReturned } from "./publish-ledger";
import { brokerReason } from "./broker-errors";
import { RouteFailureError } from "../contract/failures";
import { confirmChannel, newChannel } from "./session-channels";

/** Exchanges remembered per connection as taking publishes, and as refusing them (least recently used forgotten first). */
const KNOWN_EXCHANGES = 10_000;
/** How long an exchange the broker refused is answered from memory before it is tried again. */
const REFUSED_FOR_MS = 1000;
/** Publishes on channels of their own in flight at once. */
const ISOLATED_CHANNELS = 4;

const NOTHING = (): void => undefined;

/** Where one publish goes: the connection's shared confirm channel, or a channel lent to it alone. */
export interface PublishPath {
  /** The shared confirm channel, open now: nothing to wait for. */
  ready?: AMQPChannel;
  /** The channel, once open: call it (once) when {@link ready} is not there. */
  channel(): Promise<AMQPChannel>;
  /** Gives a lent channel back once the publish is confirmed or failed (once); nothing for the shared one. */
  release(): void;
  isolated: boolean;
}

/**
 * The channels one connection publishes on, and what it has learned about what the broker takes.
 *
 * The broker answers some messages by closing their channel, with every unconfirmed message on
 * it: one to an exchange that does not exist, is internal or may not be written to (all of which
 * a caller can name where the exchange comes from the request, `{name}`), and one larger than the
 * broker's `max_message_size`. On the channel that every request of the route shares, that would
 * turn one caller's mistake into other callers' failures. So a message goes on the shared
 * channel only when its exchange has already taken a message on this connection and its body is
 * no larger than one the broker has confirmed here; any other goes alone on a channel lent to it
 * ({@link ChannelPool}), where a close is its own refusal. What the broker refused is remembered:
 * the exchange for a second, the size limit for the connection's life.
 */
export class PublishChannels {
  readonly #proven = new NameCache<true>(KNOWN_EXCHANGES);
  readonly #refused = new NameCache<RouteFailureError>(KNOWN_EXCHANGES, REFUSED_FOR_MS);
  #largestTaken = 0;
  #maxMessageBytes = Number.POSITIVE_INFINITY;
  readonly #isolated: ChannelPool;
  readonly #session: () => Promise<AMQPSession>;
  /**
   * The path to the session's shared confirm channel as last opened (the session opens another
   * once it closes): one object, given to every publish while that channel is open.
   */
  #sharedPath: (PublishPath & { ready: AMQPChannel }) | undefined;

  readonly #live: () => boolean;

  /**
   * @param session - the connection's open session (connecting first if needed)
   * @param live - whether the connection is open now and not closed for good: only then is the
   *   shared channel last opened used without asking `session` (which refuses a closed connection)
   */
  constructor(session: () => Promise<AMQPSession>, live: () => boolean) {
    this.#session = session;
    this.#live = live;
    this.#isolated = new ChannelPool(ISOLATED_CHANNELS, async () => {
      const channel = await newChannel(await session());
      channel.onReturn = onReturned;
      // Closed by the broker over the message it carried: the publish gets the reason.
      channel.onerror = () => undefined;
      await channel.confirmSelect();
      return channel;
    });
  }

  /** Whether a message of `bytes` to `exchange` can go on the shared channel. */
  proven(exchange: string, bytes: number): boolean {
    return bytes <= this.#largestTaken && this.#proven.get(exchange) === true;
  }

  /** Why the broker will refuse a message of `bytes` to `exchange`, as it recently did; or undefined. */
  refusal(exchange: string, bytes: number): RouteFailureError | undefined {
    if (bytes > this.#maxMessageBytes) {
      return new RouteFailureError(
        "too_large",
        `the body is ${bytes} bytes, more than the ${this.#maxMessageBytes} the broker takes (its max_message_size); nothing was published`,
      );
    }
    return this.#refused.get(exchange);
  }

  /** The path of one message: shared when {@link proven} (and not asked to go `alone`), else alone on a lent channel. */
  path(exchange: string, bytes: number, alone = false): PublishPath {
    if (!alone && this.proven(exchange, bytes)) {
      const shared = this.#sharedPath;
      if (shared && !shared.ready.closed && this.#live()) return shared;
      return {
        channel: async () => {
          const channel = await confirmChannel(await this.#session());
          this.#sharedPath = { ready: channel, channel: () => Promise.resolve(channel), release: NOTHING, isolated: false };
          return channel;
        },
        release: NOTHING,
        isolated: false,
      };
    }
    const lease: ChannelLease = this.#isolated.lease();
    return { channel: () => lease.granted, release: () => lease.release(), isolated: true };
  }

  /** The broker took a message (confirmed it, refused it with a nack, or returned it): its exchange and size are fine. */
  taken(exchange: string, bytes: number): void {
    this.#proven.set(exchange, true);
    if (bytes > this.#largestTaken) this.#largestTaken = Math.min(bytes, this.#maxMessageBytes);
  }

  /**
   * The broker closed a channel with other messages in flight (the shared one: something changed
   * on the broker, such as an exchange deleted): what it names is no longer taken for granted.
   */
  lost(exchange: string, error: unknown): void {
    const cause = causeOf(error);
    if (cause.exchange !== undefined) this.#proven.delete(cause.exchange);
    if (cause.maxBytes !== undefined) this.refused(exchange, error);
  }

  /** The broker closed the channel of a message that was alone on it: remember why, for the next ones. */
  refused(exchange: string, error: unknown): RouteFailureError {
    const cause = causeOf(error);
    if (cause.maxBytes !== undefined) {
      this.#maxMessageBytes = Math.min(this.#maxMessageBytes, cause.maxBytes);
      this.#largestTaken = Math.min(this.#largestTaken, cause.maxBytes);
      return new RouteFailureError("too_large", `the broker refused the message: ${brokerReason(error)}; nothing was published`);
    }
    const failure = new RouteFailureError("broker_error", `the broker refused the message: ${brokerReason(error)}`);
    if (cause.exchange === exchange) {
      this.#proven.delete(exchange);
      this.#refused.set(exchange, failure);
    }
    return failure;
  }
}
