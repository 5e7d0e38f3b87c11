import type { AMQPSession } from "@cloudamqp/amqp-client";
import { brokerReason } from "./publish-message";
import { RouteFailureError, isChannelError, replyCodeOf } from "./route-failure";
import type { ConsumedMessage } from "./route-messages";
import { withTimeout } from "./with-timeout";

export interface GetMessage {
  queue: string;
  autoAck: boolean;
  timeoutMs: number;
}

/**
 * Takes one message with `basic.get`, or resolves null when the queue is empty. Without
 * auto-ack the message is acknowledged here, after its body has been copied out and before it is
 * handed back, and rejected with requeue if anything fails on the way, so a delivery is never
 * left unacknowledged on the broker.
 */
export const getMessage = async (session: AMQPSession, request: GetMessage): Promise<ConsumedMessage | null> => {
  const { queue, autoAck, timeoutMs } = request;
  const work = (async () => {
    const handle = await session.queue(queue, { passive: true });
    const message = await handle.get({ noAck: autoAck });
    if (!message) return null;
    try {
      const body = message.body ?? new Uint8Array(0);
      const consumed: ConsumedMessage = {
        body: body.slice().buffer,
        contentType: message.properties.contentType,
        messageId: message.properties.messageId,
        correlationId: message.properties.correlationId,
        headers: message.properties.headers,
        exchange: message.exchange,
        routingKey: message.routingKey,
        redelivered: message.redelivered,
        messageCount: message.messageCount,
      };
      if (!autoAck) await message.ack();
      return consumed;
    } catch (error) {
      if (!autoAck) await message.nack(true).catch(() => undefined);
      throw error;
    }
  })();
  try {
    return await withTimeout(work, timeoutMs, "no_answer", `the broker did not answer within ${timeoutMs} ms`);
  } catch (error) {
    if (error instanceof RouteFailureError) throw error;
    if (replyCodeOf(error) === 404) throw new RouteFailureError("queue_not_found", `queue "${queue}" does not exist`);
    if (isChannelError(error)) throw new RouteFailureError("broker_error", `the broker refused the request: ${brokerReason(error)}`);
    throw new RouteFailureError("unavailable", `the connection to the broker was lost: ${brokerReason(error)}`);
  }
};
