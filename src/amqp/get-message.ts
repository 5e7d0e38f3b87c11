import type { AMQPMessage, AMQPSession } from "@cloudamqp/amqp-client";
import { opsChannel } from "./session-channels";
import { RouteFailureError, brokerReason, isChannelError, replyCodeOf } from "./route-failure";
import type { ConsumedMessage } from "./route-messages";
import type { Deadlines } from "./deadlines";

export interface GetMessages {
  queue: string;
  autoAck: boolean;
  /** How many messages at most. */
  count: number;
  timeoutMs: number;
  /** The route object's deadlines, which bound the wait for the answer. */
  deadlines: Deadlines;
}

/** A message taken from the queue: what the Worker needs, and the delivery to acknowledge. */
export interface TakenMessage {
  consumed: ConsumedMessage;
  delivery: AMQPMessage;
}

/**
 * Takes up to `count` messages with `basic.get`, in queue order; none when the queue is empty.
 * The gets are sent together, without waiting for each answer (the broker answers them in
 * order): one round trip for a batch. Without auto-ack, the caller owns the deliveries and must
 * acknowledge or reject them; deliveries that arrive after the timeout has already been
 * answered are rejected back to the queue here.
 */
export const getMessages = async (session: AMQPSession, request: GetMessages): Promise<TakenMessage[]> => {
  const { queue, autoAck, count, timeoutMs, deadlines } = request;
  const work = (async (): Promise<TakenMessage[]> => {
    // The passive declare (once per session: the handle is cached) names a missing queue clearly.
    await session.queue(queue, { passive: true });
    const channel = await opsChannel(session);
    const deliveries = await Promise.all(Array.from({ length: count }, () => channel.basicGet(queue, { noAck: autoAck })));
    return deliveries.flatMap((delivery) => (delivery ? [{ consumed: consumedMessage(delivery), delivery }] : []));
  })();
  // consumedMessage never throws, so what was taken is always handed back to the caller, or
  // rejected back to the queue below.
  try {
    return await deadlines.within(work, timeoutMs, "no_answer", `the broker did not answer within ${timeoutMs} ms`);
  } catch (error) {
    if (!autoAck) work.then((late) => Promise.all(late.map((taken) => taken.delivery.nack(true)))).catch(() => undefined);
    if (error instanceof RouteFailureError) throw error;
    if (replyCodeOf(error) === 404) throw new RouteFailureError("queue_not_found", `queue "${queue}" does not exist`);
    if (isChannelError(error)) throw new RouteFailureError("broker_error", `the broker refused the request: ${brokerReason(error)}`);
    throw new RouteFailureError("unavailable", `the connection to the broker was lost: ${brokerReason(error)}`);
  }
};

/** What the Worker needs of a delivery to answer with it (a copy of the body: the delivery's buffer is reused). */
export const consumedMessage = (delivery: AMQPMessage): ConsumedMessage => {
  const { properties } = delivery;
  const body = delivery.body ?? new Uint8Array(0);
  return {
    body: body.slice().buffer,
    contentType: properties.contentType,
    contentEncoding: properties.contentEncoding,
    messageId: properties.messageId,
    correlationId: properties.correlationId,
    replyTo: properties.replyTo,
    type: properties.type,
    priority: properties.priority,
    expiration: properties.expiration,
    timestamp: isoTime(properties.timestamp),
    appId: properties.appId,
    headers: properties.headers,
    exchange: delivery.exchange,
    routingKey: delivery.routingKey,
    redelivered: delivery.redelivered,
    messageCount: delivery.messageCount,
  };
};

/** A time as ISO 8601, or undefined for one JavaScript cannot show (a producer may send any 64-bit value). */
export const isoTime = (time: Date | undefined): string | undefined =>
  time === undefined || Number.isNaN(time.getTime()) ? undefined : time.toISOString();
