import type { AMQPMessage, AMQPSession } from "@cloudamqp/amqp-client";
import type { BrokerConnection } from "./broker-connection";
import type { Deadlines } from "./deadlines";
import { consumedMessage } from "./get-message";
import { queueFailure } from "./queue-directory";
import { ownChannel } from "./session-channels";
import { republish } from "./message-retries";
import { republishedHeaders } from "./delivery-count";
import { RouteFailureError } from "../contract/failures";
import { MAX_ANSWER_BYTES, type ConsumedMessage } from "../contract/messages";
import type { ConsumingTarget } from "../contract/route-settings";
import { MAX_PEEKED } from "../contract/route-calls";

/** How many dead letters a redrive takes and publishes at once before it acknowledges them. */
const REDRIVE_BATCH = 100;

/**
 * Up to `max` messages from the head of `queue`, left there: taken unacknowledged on a channel of
 * their own, whose close puts them back in their places.
 */
export const peekDeadLetters = async (session: AMQPSession, queue: string, max: number): Promise<ConsumedMessage[]> => {
  const channel = await ownChannel(session);
  const messages: ConsumedMessage[] = [];
  max = Math.min(max, MAX_PEEKED);
  let bytes = 0;
  try {
    while (messages.length < max) {
      const delivery = await channel.basicGet(queue, { noAck: false });
      if (!delivery) break;
      bytes += delivery.bodySize;
      if (messages.length > 0 && bytes > MAX_ANSWER_BYTES) break;
      // The body is copied out: the delivery goes back to the queue.
      messages.push(consumedMessage(delivery));
    }
  } catch (error) {
    throw queueFailure(queue, error);
  } finally {
    await channel.close().catch(() => undefined);
  }
  return messages;
};

interface Redrive {
  /** The route: its queue is where the dead letters go back to. */
  route: ConsumingTarget;
  /** The consuming connection's session, which reads the dead-letter queue. */
  session: AMQPSession;
  /** The publishing connection, which puts them back. */
  publishing: BrokerConnection;
  deadlines: Deadlines;
  max: number;
}

/**
 * Moves up to `max` messages from the route's `dead_letter_queue` back to its queue, in order: each
 * is published to the queue (through the default exchange, with the broker's confirm) before it is
 * acknowledged from the dead letters. Nothing is lost; a crash between the two leaves a message in
 * both. A moved message starts counting its deliveries again. Stops at the first message the
 * broker does not confirm (it stays a dead letter) and says so, with what was moved before it.
 */
export const redriveDeadLetters = async (request: Redrive): Promise<{ moved: number; error?: string }> => {
  const { route, session, publishing, deadlines, max } = request;
  const queue = route.amqp.consumer.queue;
  const deadLetterQueue = route.amqp.consumer.dead_letter_queue ?? "";
  const channel = await ownChannel(session);
  let moved = 0;
  try {
    while (moved < max) {
      const taken: AMQPMessage[] = [];
      try {
        while (taken.length < Math.min(REDRIVE_BATCH, max - moved)) {
          const delivery = await channel.basicGet(deadLetterQueue, { noAck: false });
          if (!delivery) break;
          taken.push(delivery);
        }
      } catch (error) {
        if (moved === 0) throw queueFailure(deadLetterQueue, error);
        return { moved, error: queueFailure(deadLetterQueue, error).message };
      }
      if (taken.length === 0) break;
      const outcomes = await Promise.allSettled(
        inOrder(taken, (delivery) => putBack(delivery, queue, publishing, deadlines, route), publishing),
      );
      // Acknowledged in order up to the first failure; that one and those after it stay dead letters (the close puts them back).
      const firstFailed = outcomes.findIndex((outcome) => outcome.status === "rejected");
      const confirmed = firstFailed === -1 ? taken.length : firstFailed;
      for (const delivery of taken.slice(0, confirmed)) await delivery.ack();
      moved += confirmed;
      const failed = outcomes[firstFailed];
      if (failed?.status === "rejected") {
        const reason = failed.reason instanceof Error ? failed.reason.message : String(failed.reason);
        if (moved === 0) throw failed.reason instanceof RouteFailureError ? failed.reason : new RouteFailureError("broker_error", reason);
        return { moved, error: `stopped after ${moved}: ${reason}` };
      }
    }
  } finally {
    await channel.close().catch(() => undefined);
  }
  return { moved };
};

/**
 * `publish` of each delivery, pipelined, in order: one the connection might have its channel closed
 * over (a size it has not published yet, see `PublishChannels`) goes alone on a channel of its own,
 * after those before it are confirmed, and those after it wait for it, as a batch publish does.
 */
const inOrder = (
  taken: AMQPMessage[],
  publish: (delivery: AMQPMessage) => Promise<void>,
  publishing: BrokerConnection,
): Array<Promise<void>> => {
  const sent: Array<Promise<void>> = [];
  let before: Promise<unknown> = Promise.resolve();
  for (const delivery of taken) {
    const alone = !publishing.publishing.proven("", delivery.bodySize);
    const settledBefore = Promise.allSettled(sent);
    const one = alone ? settledBefore.then(() => publish(delivery)) : before.then(() => publish(delivery));
    sent.push(one);
    // Those after a lone one go once it is settled.
    if (alone) before = one.catch(() => undefined);
  }
  return sent;
};

/** Publishes a dead letter to `queue` as it was, but for what dead-lettering and the gateway's counts added. */
const putBack = (
  delivery: AMQPMessage,
  queue: string,
  publishing: BrokerConnection,
  deadlines: Deadlines,
  route: ConsumingTarget,
): Promise<void> =>
  republish({
    delivery,
    body: consumedMessage(delivery).body,
    to: { exchange: "", routingKey: queue },
    headers: republishedHeaders(delivery.properties.headers),
    connection: publishing,
    deadlines,
    timeoutMs: route.amqp.operation_timeout_ms,
  });
