/**
 * Which request headers become part of a published message, and the names that carry a message's
 * properties back in an answer: the header side of the mapping between HTTP headers and AMQP
 * properties, which routes.yaml is checked against (`access` may not name them) and both sides of
 * the gateway use. The parsing and its 400s are `src/http/message-properties.ts`.
 */

/** Prefix of request headers that become entries of the message's headers table, and back. */
export const AMQP_HEADER_PREFIX = "x-amqp-header-";

/** Content type of a message published without one (runway's default). */
export const DEFAULT_CONTENT_TYPE = "application/json";

/** Request headers that set an AMQP property whose value is an AMQP short string. */
export const SHORT_STRING_HEADERS = [
  "content-type",
  "content-encoding",
  "idempotency-key",
  "x-message-id",
  "x-correlation-id",
  "x-reply-to",
  "x-type",
] as const;
export type ShortStringHeader = (typeof SHORT_STRING_HEADERS)[number];
/** Every request header that sets an AMQP property. */
export type PropertyHeader = ShortStringHeader | "x-priority" | "x-expiration";
export const PROPERTY_HEADERS = new Set<string>([...SHORT_STRING_HEADERS, "x-priority", "x-expiration"]);

/** Whether a request header (any case) becomes part of the published message: a property or a headers-table entry. */
export const isMessageHeader = (name: string): boolean => {
  const lower = name.toLowerCase();
  return PROPERTY_HEADERS.has(lower) || lower.startsWith(AMQP_HEADER_PREFIX);
};

/**
 * Headers-table entries only the gateway or the broker sets: the gateway's delivery count and delay
 * routing (`runway-*`), and a quorum queue's `x-delivery-count`. A publisher that set them could
 * dead-letter its message before anyone saw it, or steer it through the delay queues.
 */
export const isGatewayHeader = (name: string): boolean => {
  const lower = name.toLowerCase();
  return lower.startsWith("runway-") || lower === "x-delivery-count";
};

/** The CloudEvents AMQP binding's prefix of an attribute's application property (headers-table entry). */
export const CLOUDEVENTS_PREFIX = "cloudEvents:";
