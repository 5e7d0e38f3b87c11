import type { AMQPChannel, AMQPSession } from "@cloudamqp/amqp-client";
import { confirmChannel } from "./session-channels";
import type { ReturnedMessages } from "./returned-messages";
import { NEGATIVE_CONFIRM, RouteFailureError, brokerReason, isChannelError, replyCodeOf } from "./route-failure";
import type { PublishProperties } from "./route-messages";
import type { Deadlines } from "./deadlines";
import type { PublishWindow } from "./publish-window";

const checkedExchanges = new WeakMap<AMQPSession, Set<string>>();

/**
 * Makes sure a named exchange exists, with a passive declare once per session (the gateway never
 * creates topology), so a missing exchange fails with the broker's own reason before anything is
 * published. The default exchange `""` always exists.
 */
const checkExchange = async (session: AMQPSession, name: string): Promise<void> => {
  if (name === "") return;
  let checked = checkedExchanges.get(session);
  if (!checked) checkedExchanges.set(session, (checked = new Set()));
  if (checked.has(name)) return;
  await session.exchange(name, "direct", { passive: true });
  checked.add(name);
};

export interface PublishMessage {
  exchange: string;
  routingKey: string;
  body: ArrayBuffer;
  properties: PublishProperties;
  persistent: boolean;
  /** When set, an unroutable message is returned by the broker and this publish fails as "unroutable". */
  mandatory: ReturnedMessages | undefined;
  /** The connection's window of publishes in flight; this one waits for a place before it is sent. */
  window: PublishWindow;
  /** Longest wait in milliseconds to send the message, and then, from its send, for the broker's confirm. */
  confirmTimeoutMs: number;
  /** The route object's deadlines, which bound both waits. */
  deadlines: Deadlines;
  /**
   * Told once whether the message was in the end enqueued: true on the broker's confirm (even one
   * that came after the answer timed out), false when it was refused, returned, never sent, or
   * its connection closed first.
   */
  onSettled?: (enqueued: boolean) => void;
  /** The confirm channel to publish on (default: the session's own); request/reply publishes on its reply channel. */
  channel?: () => Promise<AMQPChannel>;
}

/**
 * Publishes on the session's confirm channel and resolves only once the broker has confirmed the
 * message (`basic.ack`). Two waits, each at most `confirmTimeoutMs`: to send it (the exchange
 * check, the channel, a place in the window), then from the send for the confirm, so a message
 * late in a big batch is not timed from the request's start. Failures, as {@link RouteFailureError}s:
 * - "unavailable": nothing was sent (no connection, blocked by the broker, no place in the window in time);
 * - "invalid_message": its properties do not fit in a frame; nothing was sent;
 * - "broker_error": the broker refused it (channel error, `basic.nack`);
 * - "unroutable": a mandatory message no queue took (returned, then confirmed);
 * - "no_answer": sent, but no confirm within `confirmTimeoutMs` or before the connection dropped,
 *   so the message may or may not be enqueued.
 */
export const publishMessage = async (session: AMQPSession, message: PublishMessage): Promise<void> => {
  const { exchange, routingKey, properties, persistent, mandatory, window, confirmTimeoutMs, deadlines, onSettled } = message;
  const body = new Uint8Array(message.body);
  // Entered now, synchronously, so that a batch's messages keep their order in the window's line.
  const ticket = window.enter();
  let sent = false;
  let watch: ReturnType<ReturnedMessages["watch"]> | undefined;
  try {
    const channel = await deadlines.within(
      (async () => {
        await checkExchange(session, exchange);
        const channel = await (message.channel ? message.channel() : confirmChannel(session));
        await ticket.granted;
        return channel;
      })(),
      confirmTimeoutMs,
      "unavailable",
      `the message could not be sent within ${confirmTimeoutMs} ms (${window.size} publishes were awaiting the broker's confirm); nothing was sent`,
    );
    if (channel.closed) throw new RouteFailureError("unavailable", "the route's channel to the broker closed; nothing was sent");
    watch = mandatory?.watch(exchange, routingKey, body);
    sent = true;
    // Resolves on the broker's basic.ack, rejects on basic.nack or when the channel closes. The
    // place in the window is held until then, even past the deadline: that is what bounds memory.
    const confirmed = channel.basicPublish(
      exchange,
      routingKey,
      body,
      { ...properties, deliveryMode: persistent ? 2 : 1 },
      mandatory !== undefined,
    );
    const returned = watch;
    confirmed.then(
      () => {
        ticket.release();
        onSettled?.(!returned?.wasReturned());
      },
      () => {
        ticket.release();
        onSettled?.(false);
      },
    );
    await deadlines.within(
      confirmed,
      confirmTimeoutMs,
      "no_answer",
      `the broker did not confirm the message within ${confirmTimeoutMs} ms; it may or may not have been enqueued`,
    );
    if (watch?.wasReturned()) {
      throw new RouteFailureError(
        "unroutable",
        `no queue is bound to exchange "${exchange}" with routing key "${routingKey}"; nothing was enqueued`,
      );
    }
  } catch (error) {
    if (!sent) {
      ticket.release();
      onSettled?.(false);
    }
    throw classifyPublishError(error, { session, exchange, sent });
  } finally {
    watch?.stop();
  }
};

const classifyPublishError = (error: unknown, context: { session: AMQPSession; exchange: string; sent: boolean }): RouteFailureError => {
  if (error instanceof RouteFailureError) return error;
  // Thrown while amqp-client encodes the message, before anything is written (the Worker checks
  // these limits first; this is for a broker that negotiated a smaller frame).
  if (error instanceof RangeError || (error instanceof Error && error.message.startsWith("Short string too long"))) {
    return new RouteFailureError("invalid_message", `the message cannot be published: ${error.message}; nothing was sent`);
  }
  const reason = brokerReason(error);
  // The exchange may have been deleted: check it again next time.
  if (replyCodeOf(error) === 404) checkedExchanges.get(context.session)?.delete(context.exchange);
  if (/^Connection blocked by server/.test(reason)) {
    return new RouteFailureError(
      "unavailable",
      `the broker is not accepting messages right now (${reason.replace(/^Connection blocked by server: ?/, "")})`,
    );
  }
  if (isChannelError(error) || reason === NEGATIVE_CONFIRM)
    return new RouteFailureError("broker_error", `the broker refused the message: ${reason}`);
  if (context.sent) {
    return new RouteFailureError(
      "no_answer",
      `the connection to the broker was lost before it confirmed the message (${reason}); it may or may not have been enqueued`,
    );
  }
  return new RouteFailureError("unavailable", `the connection to the broker was lost: ${reason}`);
};
