import type { AMQPChannel, AMQPProperties } from "@cloudamqp/amqp-client";
import { ledgerOf, type Publication } from "./publish-ledger";
import { NEGATIVE_CONFIRM, brokerReason, isChannelError } from "./broker-errors";
import { RouteFailureError } from "../contract/failures";
import type { PublishProperties } from "../contract/messages";
import type { Deadlines } from "./deadlines";
import type { PublishWindow } from "./publish-window";
import type { PublishChannels } from "./publish-channels";
import { releaseBuffer } from "../release-buffer";

const EMPTY = new Uint8Array(0);

export interface PublishMessage {
  exchange: string;
  routingKey: string;
  body: ArrayBuffer;
  /** The gateway's own (strings in the headers), or the management API's (any table value). */
  properties: PublishProperties | AMQPProperties;
  /** Delivery mode 2 or 1; undefined: as the properties say (the management API's publish). */
  persistent: boolean | undefined;
  /** Whether an unroutable message is returned by the broker, and this publish fails as "unroutable". */
  mandatory: boolean;
  /** The connection's window of publishes in flight; this one waits for a place before it is sent. */
  window: PublishWindow;
  /** The connection's channels, and what it knows of what the broker takes. */
  channels: PublishChannels;
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
  /** Told how many milliseconds the broker took to confirm the message after it was sent (`/amqp/metrics`). */
  onConfirmed?: (ms: number) => void;
  /** The confirm channel to publish on, instead of the connection's own; request/reply publishes on its reply channel. */
  channel?: () => Promise<AMQPChannel>;
  /**
   * Alone on a channel of its own, whatever the connection knows: for a message whose return could
   * not be told apart from another's on a shared channel (the broker strips `BCC` from it).
   */
  alone?: boolean;
}

/**
 * Publishes with publisher confirms and resolves only once the broker has confirmed the message
 * (`basic.ack`). The channel is the connection's shared one, or one of its own when the broker
 * might close the channel over it ({@link PublishChannels}). Two waits, each at most
 * `confirmTimeoutMs`: to send it (a channel, a place in the window), then from the send for the
 * confirm, so a message late in a big batch is not timed from the request's start. Failures, as
 * {@link RouteFailureError}s:
 * - "unavailable": nothing was sent (no connection, blocked by the broker, no place in the window in time);
 * - "invalid_message": its properties do not fit in a frame; nothing was sent;
 * - "too_large": larger than the broker takes; nothing was published;
 * - "broker_error": the broker refused it (a `basic.nack`, or it closed the channel over this message);
 * - "unroutable": a mandatory message no queue took (returned, then confirmed);
 * - "no_answer": sent, but no confirm within `confirmTimeoutMs`, or before the connection dropped
 *   or the broker closed the channel over another message, so it may or may not be enqueued.
 */
export const publishMessage = async (message: PublishMessage): Promise<void> => {
  const { exchange, routingKey, properties, persistent, mandatory, window, channels, confirmTimeoutMs, deadlines, onSettled } = message;
  const body = new Uint8Array(message.body);
  const known = channels.refusal(exchange, body.byteLength);
  if (known) {
    releaseBuffer(message.body);
    onSettled?.(false);
    throw known;
  }
  // Entered now, synchronously, so that a batch's messages keep their order in the window's line.
  const ticket = window.enter();
  const path = message.channel
    ? { channel: message.channel, release: () => undefined, isolated: false }
    : channels.path(exchange, body.byteLength, message.alone);
  let sent = false;
  try {
    // Usually the shared channel is open and the window has room: the message goes at once, with
    // no wait to bound (this runs for every message published).
    const ready = "ready" in path && ticket.immediate ? path.ready : undefined;
    const channel =
      ready ??
      (await deadlines.within(
        (async () => {
          const channel = await path.channel();
          await ticket.granted;
          return channel;
        })(),
        confirmTimeoutMs,
        "unavailable",
        () =>
          `the message could not be sent within ${confirmTimeoutMs} ms (${window.size} publishes were awaiting the broker's confirm); nothing was sent`,
      ));
    if (channel.closed) throw new RouteFailureError("unavailable", "the route's channel to the broker closed; nothing was sent");
    const sentProperties: AMQPProperties = persistent === undefined ? properties : { ...properties, deliveryMode: persistent ? 2 : 1 };
    const ledger = ledgerOf(channel);
    // The body is kept only where a return must be matched against it.
    const mine: Publication = {
      exchange,
      routingKey,
      body: mandatory ? body : EMPTY,
      properties: sentProperties,
      mandatory,
      returned: false,
    };
    ledger.add(mine);
    sent = true;
    // Resolves on the broker's basic.ack, rejects on basic.nack or when the channel closes. The
    // place in the window is held until then, even past the deadline: that is what bounds memory.
    const sentAt = Date.now();
    const confirmed = channel.basicPublish(exchange, routingKey, body, sentProperties, mandatory);
    let failure: RouteFailureError | undefined;
    confirmed.then(
      () => {
        ledger.remove(mine);
        channels.taken(exchange, body.byteLength);
        ticket.release();
        path.release();
        // Written out (a large body is sent from where it lies) and confirmed: nothing reads it again.
        releaseBuffer(message.body);
        onSettled?.(!mine.returned);
        message.onConfirmed?.(Date.now() - sentAt);
      },
      (error: unknown) => {
        failure = confirmFailure(error, ledger.afterClose(mine, error) === "refused", message, body.byteLength);
        ledger.remove(mine);
        ticket.release();
        path.release();
        releaseBuffer(message.body);
        onSettled?.(false);
      },
    );
    try {
      await deadlines.within(
        confirmed,
        confirmTimeoutMs,
        "no_answer",
        () => `the broker did not confirm the message within ${confirmTimeoutMs} ms; it may or may not have been enqueued`,
      );
    } catch (error) {
      throw failure ?? error;
    }
    if (mine.returned) {
      throw new RouteFailureError(
        "unroutable",
        `no queue is bound to exchange "${exchange}" with routing key "${routingKey}"; nothing was enqueued`,
      );
    }
  } catch (error) {
    if (!sent) {
      ticket.release();
      path.release();
      releaseBuffer(message.body);
      onSettled?.(false);
    }
    throw sendFailure(error);
  }
};

/**
 * Why a message handed to amqp-client was not confirmed. It refuses some before writing them (a
 * blocked connection, a closed channel, properties that do not fit in a frame). A negative
 * confirm is the broker refusing it (it did take it in: its exchange and size are fine); a
 * channel closed while it was alone on it is the broker refusing it; a channel closed with others
 * in flight, or a lost connection, leaves its fate unknown.
 */
const confirmFailure = (error: unknown, alone: boolean, message: PublishMessage, bytes: number): RouteFailureError => {
  // Thrown while amqp-client encodes the message, before anything is written (the Worker checks
  // these limits first; this is for a broker that negotiated a smaller frame).
  if (error instanceof RangeError || (error instanceof Error && error.message.startsWith("Short string too long"))) {
    return new RouteFailureError("invalid_message", `the message cannot be published: ${error.message}; nothing was sent`);
  }
  const reason = brokerReason(error);
  if (/^Connection blocked by server/.test(reason)) {
    return new RouteFailureError(
      "unavailable",
      `the broker is not accepting messages right now (${reason.replace(/^Connection blocked by server: ?/, "")})`,
    );
  }
  if (reason === "Channel is closed")
    return new RouteFailureError("unavailable", "the route's channel to the broker closed; nothing was sent");
  if (reason === NEGATIVE_CONFIRM) {
    message.channels.taken(message.exchange, bytes);
    return new RouteFailureError("broker_error", `the broker refused the message: ${reason}`);
  }
  if (isChannelError(error)) {
    if (alone) return message.channels.refused(message.exchange, error);
    message.channels.lost(message.exchange, error);
    return new RouteFailureError(
      "no_answer",
      `the broker closed the channel before confirming the message (${reason}); it may or may not have been enqueued`,
    );
  }
  return new RouteFailureError(
    "no_answer",
    `the connection to the broker was lost before it confirmed the message (${reason}); it may or may not have been enqueued`,
  );
};

/** A failure before the message was handed to amqp-client. */
const sendFailure = (error: unknown): RouteFailureError =>
  error instanceof RouteFailureError
    ? error
    : new RouteFailureError("unavailable", `the connection to the broker was lost: ${brokerReason(error)}`);
