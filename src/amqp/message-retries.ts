import type { AMQPMessage } from "@cloudamqp/amqp-client";
import type { BrokerConnection } from "./broker-connection";
import type { Deadlines } from "./deadlines";
import { publishMessage } from "./publish-message";
import { republishedHeaders } from "./delivery-count";
import { DELAY_ENTRY_EXCHANGE, delayHeaders } from "./delay-queues";
import type { PublishProperties } from "../contract/messages";
import type { ConsumingTarget } from "../contract/route-settings";
import { RouteFailureError } from "../contract/failures";

/** A message handed out under a lease, as it is put back: its delivery, its count, and a copy of its body where one was kept. */
export interface LeasedMessage {
  delivery: AMQPMessage;
  /** Its body, kept so that it can be put back with its count; undefined where the route object had no room for it. */
  body: ArrayBuffer | undefined;
  /** Its delivery count (1 the first time). */
  count: number;
  /** The route it was taken for, its queue resolved. */
  route: ConsumingTarget;
}

interface RetryDependencies {
  /** The route's publishing connection: a put-back publishes, and a broker that blocks publishers must not stop its consumers. */
  connection: (route: ConsumingTarget) => BrokerConnection;
  deadlines: Deadlines;
  /** Counts a message rejected to its dead letters because it had been delivered `max_deliveries` times. */
  onDeadLettered: () => void;
}

/**
 * How a leased message goes back to its queue, and how one that has been delivered too often goes
 * to its dead letters instead (`consumer.max_deliveries`).
 *
 * A message goes back published anew, with its count in its headers ({@link republishedHeaders}),
 * and the delivery is acknowledged only once the broker has confirmed the new one: nothing is lost,
 * and a crash in between delivers it twice at worst. It goes straight to its queue (the default
 * exchange), or with a delay through the broker's delay queues (`delay-queues.ts`). A classic queue
 * keeps no count of its own, and a quorum queue's starts again for a message that comes back
 * through a delay: the count in the headers is what makes `max_deliveries` hold on both.
 *
 * A lease whose body was not kept (past the gigabyte of leased bodies an object stores, see
 * `LeasedBodies`) goes back the broker's way (`basic.nack` with requeue), to its place in the
 * queue; a quorum queue still counts it, a classic one only marks it redelivered.
 */
export class MessageRetries {
  readonly #deps: RetryDependencies;

  constructor(deps: RetryDependencies) {
    this.#deps = deps;
  }

  /**
   * Puts `message` back, `delayS` seconds from now (0: at once), or to its dead letters when its
   * route's `max_deliveries` says it has had its last delivery. A delay needs the body: without it,
   * or when the delay cannot be published, it rejects and the message is still the caller's.
   */
  async putBack(message: LeasedMessage, delayS: number): Promise<"requeued" | "dead_lettered"> {
    const { delivery, body, count, route } = message;
    const max = route.amqp.consumer.max_deliveries;
    if (max !== undefined && count >= max) {
      await this.deadLetter(delivery);
      return "dead_lettered";
    }
    if (!body) {
      if (delayS > 0) {
        throw new RouteFailureError(
          "unavailable",
          "the route is holding as many leased message bodies as it may, and a delay needs this one's; nack without delay_s, or retry",
          1,
        );
      }
      await delivery.nack(true);
      return "requeued";
    }
    try {
      // A delayed message may still be needed if its publish fails (the lease stays held): publish a copy.
      await this.#republish(message, delayS > 0 ? body.slice(0) : body, delayS);
    } catch (error) {
      if (delayS > 0) throw error;
      // Back the broker's way: nothing lost, the count not raised (a classic queue marks it redelivered).
      await delivery.nack(true);
      return "requeued";
    }
    // Confirmed: the delivery can go. If its connection closed meanwhile, the broker has put it
    // back as well, and it comes twice.
    await delivery.ack().catch(() => undefined);
    return "requeued";
  }

  /** Rejects `delivery` without requeue: to its queue's dead-letter exchange, or dropped where the queue has none. */
  async deadLetter(delivery: AMQPMessage): Promise<void> {
    await delivery.nack(false);
    this.#deps.onDeadLettered();
  }

  async #republish({ delivery, count, route }: LeasedMessage, body: ArrayBuffer, delayS: number): Promise<void> {
    const queue = route.amqp.consumer.queue;
    const connection = this.#deps.connection(route);
    const session = await connection.session();
    const timeoutMs = route.amqp.operation_timeout_ms;
    const target = { exchange: "", routingKey: queue };
    if (delayS > 0)
      await this.#deps.deadlines.within(
        connection.delays.ready(session, target),
        timeoutMs,
        "no_answer",
        () => "the broker did not declare the delay queues in time",
      );
    await republish({
      delivery,
      body,
      // Through a delay it keeps the routing key it came with (its destination is in its headers).
      to: delayS > 0 ? { exchange: DELAY_ENTRY_EXCHANGE, routingKey: delivery.routingKey } : target,
      headers: { ...republishedHeaders(delivery.properties.headers, count), ...(delayS > 0 ? delayHeaders(delayS, target) : {}) },
      connection,
      deadlines: this.#deps.deadlines,
      timeoutMs,
    });
  }
}

/** What {@link republish} publishes, and where. */
interface Republish {
  delivery: AMQPMessage;
  body: ArrayBuffer;
  to: { exchange: string; routingKey: string };
  /** Its headers table as published again (see `republishedHeaders`). */
  headers: Record<string, unknown>;
  connection: BrokerConnection;
  deadlines: Deadlines;
  timeoutMs: number;
}

/**
 * Publishes a delivered message again (put back, delayed, or redriven from its dead letters), with
 * the broker's confirm: its own properties, but those the broker would hold against it now: a time
 * to live (it would expire on the way), and a user id (the broker checks it against this
 * connection's user). Mandatory: a queue deleted since would take nothing, and that is said rather
 * than the message dropped.
 */
export const republish = async ({ delivery, body, to, headers, connection, deadlines, timeoutMs }: Republish): Promise<void> => {
  const { expiration: _expiration, userId: _userId, deliveryMode, headers: _headers, ...kept } = delivery.properties;
  await publishMessage({
    exchange: to.exchange,
    routingKey: to.routingKey,
    body,
    properties: { ...kept, headers } as unknown as PublishProperties,
    persistent: deliveryMode === 2,
    mandatory: true,
    window: connection.window,
    channels: connection.publishing,
    confirmTimeoutMs: timeoutMs,
    deadlines,
  });
};
