import type { AMQPMessage } from "@cloudamqp/amqp-client";

/**
 * The headers-table entry in which the gateway keeps a message's delivery count when it puts the
 * message back itself (a lease nacked or run out, a nack with a delay): the count of the delivery
 * that was put back. A classic queue counts nothing, and a message that comes back through a delay
 * is a new message to its queue, so the count travels with the message.
 */
export const GATEWAY_COUNT_HEADER = "runway-delivery-count";

/** The broker's own count of a quorum queue message's earlier deliveries (RabbitMQ sets it from the second delivery on). */
const BROKER_COUNT_HEADER = "x-delivery-count";

/**
 * How many times `delivery` has been delivered, this time included: 1 the first time. What the
 * gateway kept with the message when it last put it back ({@link GATEWAY_COUNT_HEADER}), plus
 * the deliveries since that the broker knows of: a quorum queue's `x-delivery-count`; for a
 * classic queue, only whether it was redelivered (at least once more: a classic queue does not
 * say how many times a lost connection put it back).
 */
export const deliveryCountOf = (delivery: AMQPMessage): number => {
  const headers = delivery.properties.headers;
  const kept = countIn(headers?.[GATEWAY_COUNT_HEADER]);
  const broker = countIn(headers?.[BROKER_COUNT_HEADER]) ?? (delivery.redelivered ? 1 : 0);
  return (kept ?? 0) + broker + 1;
};

/** A count from a headers-table value: a whole number of 0 or more (a number, a 64-bit integer, or its text), else undefined. */
const countIn = (value: unknown): number | undefined => {
  const count = typeof value === "bigint" ? Number(value) : typeof value === "string" && /^\d{1,9}$/.test(value) ? Number(value) : value;
  return typeof count === "number" && Number.isSafeInteger(count) && count >= 0 ? count : undefined;
};

/**
 * The headers a message put back by the gateway is published with: its own, without what the
 * broker or an earlier trip through the gateway's delays added (a dead-lettering history would make
 * the broker drop the message as a dead-letter cycle on its next trip through the same delay
 * queue), and with `count`, the count of the delivery being put back (none after a redrive: a
 * message moved back from its dead letters starts counting again).
 */
export const republishedHeaders = (headers: Record<string, unknown> | undefined, count?: number): Record<string, unknown> => {
  const kept: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (!BROKER_ADDED.test(name) && name !== GATEWAY_COUNT_HEADER && !name.startsWith(DELAY_HEADER_PREFIX)) kept[name] = value;
  }
  if (count !== undefined) kept[GATEWAY_COUNT_HEADER] = count;
  return kept;
};

/** Headers RabbitMQ adds as it dead-letters or counts deliveries. */
const BROKER_ADDED = /^x-(death|first-death-.*|last-death-.*|delivery-count)$/;

/** The prefix of the headers that route a message through the gateway's delay queues (`delay-queues.ts`). */
export const DELAY_HEADER_PREFIX = "runway-delay-";
