import type { AMQPChannel, AMQPSession } from "@cloudamqp/amqp-client";
import { RouteFailureError } from "../contract/failures";
import { brokerReason, replyCodeOf } from "./broker-errors";
import { DELAY_HEADER_PREFIX } from "./delivery-count";
import { ownChannel } from "./session-channels";

/**
 * Delays held by the broker, not by the gateway: a nack with `delay_s` and a publish with
 * `X-Delay` go through a ladder of delay queues, one per power of two of seconds (1 s, 2 s, 4 s,
 * ... 65536 s), each with a fixed time to live (`x-message-ttl`). A message takes the rungs whose
 * bits make up its delay: 5 s is 4 s then 1 s. When a message's time on a rung is up, the queue
 * dead-letters it to the next rung's exchange; one whose bit is not set falls through it (its
 * alternate exchange). After the last rung, `runway.delay.deliver` routes it to its destination
 * by a header. So:
 * - a delay is exact to the second: every message on a rung has the same time to live, so the
 *   one at the head is always the first due (a single queue with per-message TTLs would hold a
 *   1 s delay behind a 12 h one);
 * - what the broker holds is bounded whatever callers ask for: 18 exchanges and 17 queues per
 *   vhost, shared by every route and gateway;
 * - the message is the broker's all along: a gateway that restarts or is evicted meanwhile loses
 *   nothing. A broker crash while it moves between rungs can lose it, as any classic dead-lettering.
 *
 * The ladder needs no plugin. RabbitMQ's delayed-message exchange plugin would need installing on
 * the broker, and keeps its delayed messages on one node only.
 */
export const DELAY_LEVELS = 17;

/** The longest delay the ladder gives: every rung, 131071 s (36 h). */
export const MAX_LADDER_S = 2 ** DELAY_LEVELS - 1;

/** The exchange (and queue) of the rung of `2^level` seconds. */
const rungName = (level: number): string => `runway.delay.${2 ** level}s`;

/** Where delayed messages enter: the longest rung, from which every delay falls through the others. */
export const DELAY_ENTRY_EXCHANGE = rungName(DELAY_LEVELS - 1);

/** Routes each message whose delay is over to its destination, by {@link TO_HEADER}. */
export const DELAY_DELIVER_EXCHANGE = "runway.delay.deliver";

/** Names the destination: `queue:<name>` or `exchange:<name>`. */
const TO_HEADER = `${DELAY_HEADER_PREFIX}to`;

/** Set (to "1") for each rung a message takes. Headers exchanges ignore binding keys that start with `x-`, so these do not. */
const rungHeader = (level: number): string => `${DELAY_HEADER_PREFIX}${2 ** level}s`;

/** Where a delayed message goes when its delay is over: a queue (through the default exchange) or an exchange with the message's routing key. */
export interface DelayTarget {
  exchange: string;
  routingKey: string;
}

/** The default exchange cannot be bound to: a message for it goes straight to the queue its routing key names. */
const targetName = ({ exchange, routingKey }: DelayTarget): string => (exchange === "" ? `queue:${routingKey}` : `exchange:${exchange}`);

/** Whole seconds of delay for `ms`: rounded up, so that a message is never early. */
export const delaySeconds = (ms: number): number => Math.ceil(ms / 1000);

/**
 * The headers that carry a message through the ladder: one per rung it takes, and its destination.
 * Published to {@link DELAY_ENTRY_EXCHANGE} with the routing key it is to arrive with.
 */
export const delayHeaders = (seconds: number, target: DelayTarget): Record<string, string> => {
  const headers: Record<string, string> = { [TO_HEADER]: targetName(target) };
  for (let level = 0; level < DELAY_LEVELS; level++) if (Math.floor(seconds / 2 ** level) % 2 === 1) headers[rungHeader(level)] = "1";
  return headers;
};

/** A publisher's headers without any that would steer the message through the ladder: only the gateway sets those. */
export const withoutDelayHeaders = (headers: Record<string, string> | undefined): Record<string, string> =>
  Object.fromEntries(Object.entries(headers ?? {}).filter(([name]) => !name.startsWith(DELAY_HEADER_PREFIX)));

/**
 * The ladder on one connection: declared once per session; and before each message enters it, its
 * destination bound to {@link DELAY_DELIVER_EXCHANGE} (concurrent messages for one destination
 * share one bind). Binding again each time costs a round trip, and is what keeps a delayed message
 * from being dropped when its queue has been deleted and declared again meanwhile (which takes
 * the queue's bindings with it). Declaring is idempotent, so several routes and gateways share one
 * ladder per vhost.
 */
export class DelayQueues {
  #session: AMQPSession | undefined;
  #ladder: Promise<void> | undefined;
  /** Binds in flight, by destination: a message for a destination being bound waits for that bind. */
  readonly #binding = new Map<string, Promise<void>>();

  /** Resolves once a message for `target` may enter the ladder on `session`; rejects with the broker's refusal. */
  async ready(session: AMQPSession, target: DelayTarget): Promise<void> {
    if (session !== this.#session) {
      this.#session = session;
      this.#ladder = undefined;
      this.#binding.clear();
    }
    this.#ladder ??= this.#declare(session, declareLadder, "the delay queues (runway.delay.*)").catch((error: unknown) => {
      this.#ladder = undefined;
      throw error;
    });
    await this.#ladder;
    const name = targetName(target);
    let bound = this.#binding.get(name);
    if (!bound) {
      bound = this.#declare(session, (channel) => bindTarget(channel, target), `the delay binding to ${name}`).finally(() =>
        this.#binding.delete(name),
      );
      this.#binding.set(name, bound);
    }
    await bound;
  }

  /**
   * Runs `work` on a channel of its own, closed after: a refusal closes only its channel, so a
   * caller whose destination the broker refuses (a queue that does not exist) cannot fail the
   * binds of others under way at the same time.
   */
  async #declare(session: AMQPSession, work: (channel: AMQPChannel) => Promise<void>, what: string): Promise<void> {
    let channel: AMQPChannel | undefined;
    try {
      channel = await ownChannel(session);
      await work(channel);
    } catch (error) {
      throw refusal(error, what);
    } finally {
      if (channel && !channel.closed) await channel.close().catch(() => undefined);
    }
  }
}

/** Declares the rungs, shortest first: each rung's alternate and dead-letter exchange is the next shorter one. */
const declareLadder = async (channel: AMQPChannel): Promise<void> => {
  await channel.exchangeDeclare(DELAY_DELIVER_EXCHANGE, "headers", { durable: true });
  for (let level = 0; level < DELAY_LEVELS; level++) {
    const name = rungName(level);
    const next = level === 0 ? DELAY_DELIVER_EXCHANGE : rungName(level - 1);
    await channel.exchangeDeclare(name, "headers", { durable: true }, { "alternate-exchange": next });
    await channel.queueDeclare(
      name,
      { durable: true },
      { "x-queue-type": "classic", "x-message-ttl": 2 ** level * 1000, "x-dead-letter-exchange": next },
    );
    await channel.queueBind(name, name, "", { "x-match": "all", [rungHeader(level)]: "1" });
  }
};

const bindTarget = async (channel: AMQPChannel, target: DelayTarget): Promise<void> => {
  const args = { "x-match": "all", [TO_HEADER]: targetName(target) };
  if (target.exchange === "") await channel.queueBind(target.routingKey, DELAY_DELIVER_EXCHANGE, "", args);
  else await channel.exchangeBind(target.exchange, DELAY_DELIVER_EXCHANGE, "", args);
};

/** The broker refused a declare or a binding: why, for the caller (nothing was delayed). */
const refusal = (error: unknown, what: string): RouteFailureError => {
  if (error instanceof RouteFailureError) return error;
  const code = replyCodeOf(error);
  const reason = brokerReason(error);
  if (code === 403) {
    return new RouteFailureError(
      "misconfigured",
      `the broker refused ${what}: ${reason}; a delay needs configure, write and read permission on runway.delay.*`,
    );
  }
  // A missing exchange is the broker refusing the publish (502), as it is for a message not delayed.
  if (code === 404)
    return new RouteFailureError(/ exchange /.test(reason) ? "broker_error" : "queue_not_found", `the broker refused ${what}: ${reason}`);
  if (code === undefined)
    return new RouteFailureError("unavailable", `the connection to the broker was lost while declaring ${what}: ${reason}`);
  return new RouteFailureError("broker_error", `the broker refused ${what}: ${reason}`);
};
