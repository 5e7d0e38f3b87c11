import type { AMQPChannel, AMQPMessage, AMQPProperties } from "@cloudamqp/amqp-client";
import { brokerReason, isChannelError } from "./broker-errors";

/** RabbitMQ's direct reply-to (request/reply's `reply_to`). */
export const DIRECT_REPLY_TO = "amq.rabbitmq.reply-to";

/** One publish in flight on a channel, as it was sent. */
export interface Publication {
  exchange: string;
  routingKey: string;
  body: Uint8Array;
  properties: AMQPProperties;
  mandatory: boolean;
  /** Set when the broker returned it (mandatory, and no queue took it). */
  returned: boolean;
}

/**
 * What a publish still unconfirmed when the broker closed its channel can be told: "refused" when
 * it was the only message in flight there (the broker closed the channel over it, and refused it);
 * else "unknown", since which one the broker closed the channel over, and whether the others were
 * enqueued before, cannot be told (their confirms are lost with the channel).
 */
export type CloseVerdict = "refused" | "unknown";

/** What the broker's reason for closing a channel says it was over, when it says. */
export interface CloseCause {
  /** Messages to this exchange are refused (NOT_FOUND, ACCESS_REFUSED of an exchange). */
  exchange?: string;
  /** Messages larger than this are refused (the broker's `max_message_size`). */
  maxBytes?: number;
}

/**
 * The publishes in flight on one confirm channel, in the order they were sent. A channel shared
 * by many requests carries messages of callers who do not trust each other, so two things that
 * arrive for "a message" must be given to the right one:
 *
 * - A `basic.return` carries no delivery tag: it is matched to the oldest publish in flight on
 *   its channel that is identical in everything the broker routes on and everything it returns
 *   (exchange, routing key, properties with their headers, body). The broker returns messages in
 *   the order they were published, each before the confirm that covers it, so among truly
 *   identical messages in flight the oldest is the returned one; two that differ in anything
 *   (a header of a headers exchange) are never confused.
 * - A channel closed by the broker rejects every unconfirmed publish on it with one error, which
 *   is a refusal only for a message that was alone in flight there ({@link CloseVerdict}). That
 *   is why a message that may make the broker close its channel is sent on a channel of its own
 *   (see `PublishChannels`).
 */
export class PublishLedger {
  readonly #inFlight = new Set<Publication>();
  /** Per closing error: how many publications were in flight when it came. */
  readonly #closes = new WeakMap<Error, number>();

  add(publication: Publication): void {
    this.#inFlight.add(publication);
  }

  remove(publication: Publication): void {
    this.#inFlight.delete(publication);
  }

  /** The broker returned `message`: the oldest identical mandatory publish in flight is marked returned. */
  onReturn(message: AMQPMessage): void {
    const body = message.body ?? new Uint8Array(0);
    for (const publication of this.#inFlight) {
      if (!publication.mandatory || publication.returned) continue;
      if (publication.exchange !== message.exchange || publication.routingKey !== message.routingKey) continue;
      if (!sameProperties(publication.properties, message.properties) || !sameBytes(publication.body, body)) continue;
      publication.returned = true;
      return;
    }
  }

  /**
   * What `publication` can be told after its channel was closed by `error`. Judged once per
   * error, over the publications in flight when it came (call it before removing any of them).
   */
  afterClose(publication: Publication, error: unknown): CloseVerdict {
    if (!(error instanceof Error) || !isChannelError(error) || !this.#inFlight.has(publication)) return "unknown";
    let inFlight = this.#closes.get(error);
    if (inFlight === undefined) this.#closes.set(error, (inFlight = this.#inFlight.size));
    return inFlight === 1 ? "refused" : "unknown";
  }
}

const ledgers = new WeakMap<AMQPChannel, PublishLedger>();

/** The ledger of `channel`. */
export const ledgerOf = (channel: AMQPChannel): PublishLedger => {
  let ledger = ledgers.get(channel);
  if (!ledger) ledgers.set(channel, (ledger = new PublishLedger()));
  return ledger;
};

/** amqp-client's `onReturn` for every channel the gateway publishes on: the return goes to its channel's ledger. */
export const onReturned = (message: AMQPMessage): void => ledgers.get(message.channel)?.onReturn(message);

/** The cause named in the broker's reason for closing a channel, when it names one the gateway can learn from. */
export const causeOf = (error: unknown): CloseCause => {
  const reason = brokerReason(error);
  const exchange = /^(?:NOT_FOUND|ACCESS_REFUSED) - [\s\S]*?\bexchange '([\s\S]*)' in vhost '[^']*'/.exec(reason)?.[1];
  if (exchange !== undefined) return { exchange };
  const maxBytes = /message size \d+ is larger than (?:configured )?max size (\d+)/.exec(reason)?.[1];
  if (maxBytes !== undefined) return { maxBytes: Number(maxBytes) };
  return {};
};

/** Every property of one equal to the other's, headers entry by entry (the gateway sends strings). */
const sameProperties = (sent: AMQPProperties, returned: AMQPProperties): boolean => {
  const keys = new Set([...Object.keys(sent), ...Object.keys(returned)] as Array<keyof AMQPProperties>);
  for (const key of keys) {
    if (key === "headers") {
      // The broker takes BCC out of every copy it delivers or returns.
      if (!sameTable(withoutBcc(sent.headers), returned.headers)) return false;
    } else if (key === "replyTo" && sent.replyTo === DIRECT_REPLY_TO) {
      // The broker gives a direct reply-to request the address of the channel that sent it.
      if (!returned.replyTo?.startsWith(`${DIRECT_REPLY_TO}.`)) return false;
    } else if (!sameValue(sent[key], returned[key])) return false;
  }
  return true;
};

const withoutBcc = (headers: Record<string, unknown> | undefined): Record<string, unknown> | undefined => {
  if (!headers || !Object.hasOwn(headers, "BCC")) return headers;
  const { BCC: _bcc, ...rest } = headers;
  return rest;
};

const sameTable = (a: Record<string, unknown> | undefined, b: Record<string, unknown> | undefined): boolean => {
  const left = a ?? {};
  const right = b ?? {};
  const keys = new Set([...Object.keys(left), ...Object.keys(right)]);
  for (const key of keys) if (!sameValue(left[key], right[key])) return false;
  return true;
};

const sameValue = (a: unknown, b: unknown): boolean => {
  // A long sent as a bigint comes back as a number (amqp-client reads longs as numbers).
  if (typeof a === "bigint") return typeof b === "number" ? BigInt(b) === a : a === b;
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime();
  if (a instanceof Uint8Array && b instanceof Uint8Array) return sameBytes(a, b);
  if (typeof a === "object" && a !== null && typeof b === "object" && b !== null) {
    return sameTable(a as Record<string, unknown>, b as Record<string, unknown>);
  }
  return a === b;
};

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
};
