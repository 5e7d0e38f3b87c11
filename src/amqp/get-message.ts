import type { AMQPMessage, AMQPSession } from "@cloudamqp/amqp-client";
import { opsChannel } from "./session-channels";
import { RouteFailureError, brokerReason, isChannelError, replyCodeOf } from "./route-failure";
import type { ConsumedMessage } from "./route-messages";
import type { Deadlines } from "./deadlines";

export interface GetMessage {
  queue: string;
  autoAck: boolean;
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
 * Takes one message with `basic.get`, or resolves null when the queue is empty. Without
 * auto-ack, the caller owns the delivery and must acknowledge or reject it; a delivery that
 * arrives after the timeout has already been answered is rejected back to the queue here.
 */
export const getMessage = async (session: AMQPSession, request: GetMessage): Promise<TakenMessage | null> => {
  const { queue, autoAck, timeoutMs, deadlines } = request;
  const work = (async (): Promise<TakenMessage | null> => {
    // The passive declare (once per session: the handle is cached) names a missing queue clearly.
    await session.queue(queue, { passive: true });
    const delivery = await (await opsChannel(session)).basicGet(queue, { noAck: autoAck });
    if (!delivery) return null;
    const body = delivery.body ?? new Uint8Array(0);
    const consumed: ConsumedMessage = {
      body: body.slice().buffer,
      contentType: delivery.properties.contentType,
      messageId: delivery.properties.messageId,
      correlationId: delivery.properties.correlationId,
      headers: delivery.properties.headers,
      exchange: delivery.exchange,
      routingKey: delivery.routingKey,
      redelivered: delivery.redelivered,
      messageCount: delivery.messageCount,
    };
    return { consumed, delivery };
  })();
  try {
    return await deadlines.within(work, timeoutMs, "no_answer", `the broker did not answer within ${timeoutMs} ms`);
  } catch (error) {
    if (!autoAck) work.then((late) => late?.delivery.nack(true)).catch(() => undefined);
    if (error instanceof RouteFailureError) throw error;
    if (replyCodeOf(error) === 404) throw new RouteFailureError("queue_not_found", `queue "${queue}" does not exist`);
    if (isChannelError(error)) throw new RouteFailureError("broker_error", `the broker refused the request: ${brokerReason(error)}`);
    throw new RouteFailureError("unavailable", `the connection to the broker was lost: ${brokerReason(error)}`);
  }
};
