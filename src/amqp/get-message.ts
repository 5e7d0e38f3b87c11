import type { AMQPChannel, AMQPMessage, AMQPSession } from "@cloudamqp/amqp-client";
import { deliveryCountOf } from "./delivery-count";
import { giveBack } from "./hand-over";
import { isAbout, isChannelClosed, isConnectionRefusal, queueFailure, type KnownQueue, type QueueDirectory } from "./queue-directory";
import { isChannelError } from "./broker-errors";
import { RouteFailureError } from "../contract/failures";
import type { ConsumedMessage } from "../contract/messages";
import type { Deadlines } from "./deadlines";

export interface GetMessages {
  queue: string;
  /** The channel to take them on: the session's ops channel, or for an `auto_ack` answer its transactional one (see `autoAckChannel`). */
  channel: (session: AMQPSession) => Promise<AMQPChannel>;
  /** A new channel of the same kind, for the first get of a queue on the connection (see `QueueDirectory.firstGetChannel`). */
  firstGetChannel: (session: AMQPSession) => Promise<AMQPChannel>;
  /** How many messages at most. */
  count: number;
  /** Most body bytes in all; the first message is taken whatever its size. */
  maxBytes: number;
  timeoutMs: number;
  /** The route object's deadlines, which bound the wait for the answer. */
  deadlines: Deadlines;
  /** Which queues the connection knows to exist; a queue is checked there before any get. */
  directory: QueueDirectory;
  /** A message delivered more times than this is not taken: it goes to {@link deadLetter} (`consumer.max_deliveries`). */
  maxDeliveries?: number | undefined;
  deadLetter?: (delivery: AMQPMessage) => Promise<void>;
}

/** A message taken from the queue: what the Worker needs, and the delivery to acknowledge. */
export interface TakenMessage {
  consumed: ConsumedMessage;
  delivery: AMQPMessage;
}

/** How often a take starts again after another request's operation closed the shared channel under it. */
const ATTEMPTS = 3;

/**
 * Takes up to `count` messages with `basic.get`, in queue order, whose bodies add up to at most
 * `maxBytes` (the first is always taken); none when the queue is empty. The first get of a queue
 * on the connection goes on a channel of its own, and the others only once one was answered: a
 * get the broker refuses (a queue the route's user may not read) closes its channel.
 *
 * The gets are sent together, without waiting for each answer (the broker answers them in order),
 * on the connection's shared ops channel. How many go together follows the size of the queue's
 * messages: the first take of a queue asks for one, later ones for as many as fit by the largest
 * body seen lately, and a batch stops before a message that would not fit. So a batch is not
 * filled by taking more and putting the rest back, which would mark those messages redelivered
 * and spend their delivery attempts (a quorum queue's `x-delivery-limit`) though no client saw them.
 *
 * The queue is known to exist before any get (see {@link QueueDirectory}): a get on a missing
 * queue would make the broker close the shared channel, and with it every other request's gets.
 * If the channel closes all the same (a queue deleted since, a read the user may not do), a get
 * fails as its own only when the broker's reason names its queue; another request's failure
 * makes it start again (gets the broker had not answered were not carried out).
 *
 * Always unacknowledged, whatever the route's mode: the caller owns the deliveries and must
 * acknowledge or reject them (for `auto_ack`, see `acknowledgeForHandOver`). Deliveries that
 * arrive after the timeout has been answered are rejected back to the queue here. Taken with
 * `basic.get`'s no-ack, such a late delivery would be gone from the broker with nobody to hand
 * it to: a message lost for a request that had already been answered.
 */
export const getMessages = async (session: AMQPSession, request: GetMessages): Promise<TakenMessage[]> => {
  const { queue, timeoutMs, deadlines, directory } = request;
  const work = (async (): Promise<TakenMessage[]> => {
    const known = await directory.check(queue, deadlines, timeoutMs);
    for (let attempt = 1; ; attempt++) {
      try {
        const taken = await take(session, request, known);
        known.typicalBytes = typicalBytes(known.typicalBytes, taken);
        return taken;
      } catch (error) {
        if (error instanceof RouteFailureError) throw error;
        if (isChannelError(error) && isAbout(error, "queue", queue)) {
          const failure = queueFailure(queue, error);
          directory.refused(queue, failure);
          throw failure;
        }
        if (isConnectionRefusal(error) && isAbout(error, "queue", queue)) throw directory.closedConnection(queue, error);
        // Another request's operation closed the channel: ours were not carried out.
        if (!isChannelClosed(error) || session.closed) throw queueFailure(queue, error);
        if (attempt >= ATTEMPTS) {
          throw new RouteFailureError(
            "unavailable",
            "the broker kept closing the channel this request shares with others, over their requests; nothing was taken, retry",
          );
        }
      }
    }
  })();
  // consumedMessage never throws, so what was taken is always handed back to the caller, or
  // rejected back to the queue below.
  try {
    return await deadlines.within(work, timeoutMs, "no_answer", () => `the broker did not answer within ${timeoutMs} ms`);
  } catch (error) {
    work.then((late) => giveBack(late.map((taken) => taken.delivery))).catch(() => undefined);
    throw error instanceof RouteFailureError ? error : queueFailure(queue, error);
  }
};

/**
 * One attempt: groups of pipelined gets until `count`, `maxBytes` or an empty queue. Rejects with
 * amqp-client's error when the channel closes, after giving back what it had taken.
 */
const take = async (session: AMQPSession, request: GetMessages, known: KnownQueue): Promise<TakenMessage[]> => {
  const { queue, count, maxBytes } = request;
  const taken: TakenMessage[] = [];
  let bytes = 0;
  let largest = known.typicalBytes;
  for (;;) {
    const room = maxBytes - bytes;
    const wanted = count - taken.length;
    if (wanted <= 0 || (taken.length > 0 && largest !== undefined && largest > room)) return taken;
    // Unknown sizes, or a queue not read on this connection yet: one first, on a channel of its own.
    const first = !known.readable;
    const group = largest === undefined || first ? 1 : Math.max(1, Math.min(wanted, Math.floor(room / Math.max(largest, 1))));
    const channel = first
      ? await request.directory.firstGetChannel(() => request.firstGetChannel(session))
      : await request.channel(session);
    const answers = await Promise.allSettled(Array.from({ length: group }, () => channel.basicGet(queue, { noAck: false })));
    if (first) {
      const got = answers.flatMap((answer) => (answer.status === "fulfilled" && answer.value ? [answer.value] : []));
      request.directory.firstGetDone(channel, got);
      if (answers.every((answer) => answer.status === "fulfilled")) known.readable = true;
    }
    const failed = answers.find((answer): answer is PromiseRejectedResult => answer.status === "rejected");
    let empty = false;
    const over: AMQPMessage[] = [];
    const dead: AMQPMessage[] = [];
    for (const answer of answers) {
      if (answer.status === "rejected") continue;
      const delivery = answer.value;
      if (!delivery) {
        empty = true;
        continue;
      }
      if (isOverLimit(delivery, request.maxDeliveries)) {
        dead.push(delivery);
        continue;
      }
      const size = delivery.bodySize;
      largest = Math.max(largest ?? 0, size);
      if (taken.length > 0 && (bytes + size > maxBytes || over.length > 0)) over.push(delivery);
      else {
        bytes += size;
        taken.push({ consumed: consumedMessage(delivery), delivery });
      }
    }
    // Unacknowledged deliveries of a closed channel are back in the queue already (the broker
    // requeues them): the attempt starts again, or fails, with nothing taken.
    if (failed) throw failed.reason;
    // Delivered as often as the route allows: to the dead letters, and the take goes on.
    await Promise.all(dead.map((delivery) => request.deadLetter?.(delivery) ?? delivery.nack(false)));
    // Larger than the sizes seen so far: back to the queue, in order (the rare case the sizing
    // above cannot foresee).
    await giveBack(over);
    if (empty || over.length > 0) return taken;
  }
};

/** The body size to plan the next take by: a larger one at once, a smaller one slowly. */
const typicalBytes = (typical: number | undefined, taken: TakenMessage[]): number | undefined => {
  if (taken.length === 0) return typical;
  const largest = Math.max(...taken.map(({ delivery }) => delivery.bodySize));
  return typical === undefined || largest >= typical ? largest : Math.round(0.9 * typical + 0.1 * largest);
};

/**
 * What the Worker needs of a delivery to answer with it. The body's buffer is the delivery's own
 * (amqp-client gives each message a fresh one) and is handed over: the delivery, kept only to be
 * acknowledged later (a lease, an answer being written), no longer holds it.
 */
export const consumedMessage = (delivery: AMQPMessage): ConsumedMessage => {
  const bytes = delivery.body ?? new Uint8Array(0);
  const body = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer;
  delivery.body = null;
  // amqp-client's frame buffer for the body (internal, and the same bytes).
  (delivery as unknown as { _rawBytes: Uint8Array | null })._rawBytes = null;
  return { body: body as ArrayBuffer, ...deliveryProperties(delivery) };
};

/** A delivery's properties and where it came from, as a GET answer shows them; its body untouched. */
export const deliveryProperties = (delivery: AMQPMessage): Omit<ConsumedMessage, "body"> => {
  const { properties } = delivery;
  return {
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
    deliveryCount: deliveryCountOf(delivery),
    messageCount: delivery.messageCount,
  };
};

/** Whether `delivery` has been delivered more often than `maxDeliveries` allows (never without one). */
export const isOverLimit = (delivery: AMQPMessage, maxDeliveries: number | undefined): boolean =>
  maxDeliveries !== undefined && deliveryCountOf(delivery) > maxDeliveries;

/** A time as ISO 8601, or undefined for one JavaScript cannot show (a producer may send any 64-bit value). */
export const isoTime = (time: Date | undefined): string | undefined =>
  time === undefined || Number.isNaN(time.getTime()) ? undefined : time.toISOString();
