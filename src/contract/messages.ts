/**
 * Messages as they cross between the Worker and a route's object: what is published, what was
 * taken from a queue, and how large an answer may be. Plain structured-clonable data; this module,
 * like the rest of `src/contract/`, imports nothing of the gateway's.
 */

/**
 * Bodies of one answer (a batch, a reply) add up to at most this: what crosses from the object to
 * the Worker is limited to 32 MiB, and the Worker may grow a body by a third (base64 in a batch's JSON).
 */
export const MAX_ANSWER_BYTES = 20 * 1024 * 1024;

/** AMQP properties the gateway sets from the request's headers (see `src/http/message-properties.ts`). */
export interface PublishProperties {
  contentType: string;
  contentEncoding?: string;
  messageId?: string;
  correlationId?: string;
  replyTo?: string;
  /** 0 to 9. */
  priority?: number;
  /** Time to live in milliseconds, as AMQP wants it: a decimal string. */
  expiration?: string;
  type?: string;
  headers?: Record<string, string>;
}

/** One message to publish. */
export interface OutgoingMessage {
  body: ArrayBuffer;
  properties: PublishProperties;
}

/** A message taken from the queue, as the Worker needs it to answer. */
export interface ConsumedMessage {
  body: ArrayBuffer;
  contentType: string | undefined;
  contentEncoding: string | undefined;
  messageId: string | undefined;
  correlationId: string | undefined;
  replyTo: string | undefined;
  type: string | undefined;
  priority: number | undefined;
  expiration: string | undefined;
  /** ISO 8601. */
  timestamp: string | undefined;
  appId: string | undefined;
  /** The message's headers table. */
  headers: Record<string, unknown> | undefined;
  exchange: string;
  routingKey: string;
  redelivered: boolean;
  /** How many times it has been delivered, this time included (`X-Delivery-Count`; `src/amqp/delivery-count.ts`). */
  deliveryCount: number;
  messageCount: number | undefined;
}
