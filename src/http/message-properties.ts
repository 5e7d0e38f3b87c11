import type { PublishProperties } from "../amqp/route-messages";
import { GatewayError } from "./gateway-error";

/** Prefix of request headers that become entries of the message's headers table, and back. */
export const AMQP_HEADER_PREFIX = "x-amqp-header-";

/** Content type of a message published without one (the seed's default). */
export const DEFAULT_CONTENT_TYPE = "application/json";

/** AMQP short strings (message id, correlation id, ...) hold at most 255 bytes. */
const SHORT_STRING_BYTES = 255;

/**
 * The message's properties from the request's headers:
 *
 * | header | property |
 * | --- | --- |
 * | `Content-Type` | content_type (default `application/json`) |
 * | `Content-Encoding` | content_encoding |
 * | `Idempotency-Key` or `X-Message-Id` | message_id |
 * | `X-Correlation-Id`, `X-Reply-To`, `X-Type` | correlation_id, reply_to, type |
 * | `X-Priority` | priority, 0 to 9 |
 * | `X-Expiration` | expiration, milliseconds |
 * | `X-AMQP-Header-<name>` | headers table entry `<name>` |
 *
 * A value the broker could not take answers 400 naming the header, before anything is published.
 */
export const publishProperties = (headers: Headers, routeId: string): PublishProperties => {
  const invalid = (header: string, reason: string) => new GatewayError(400, `header ${header}: ${reason}`, routeId);

  // One pass over the request's headers (names come lowercased), rather than a lookup per
  // property: this runs on every publish.
  const found: Partial<Record<PropertyHeader, string>> = {};
  let table: Record<string, string> | undefined;
  for (const [name, value] of headers) {
    if (name.startsWith(AMQP_HEADER_PREFIX)) {
      const key = name.slice(AMQP_HEADER_PREFIX.length);
      if (key === "") throw invalid(name, "names no header");
      (table ??= {})[key] = value;
    } else if (PROPERTY_HEADERS.has(name)) {
      found[name as PropertyHeader] = value;
    }
  }
  const shortString = (header: ShortStringHeader): string | undefined => {
    const value = found[header];
    if (value !== undefined && overShortString(value)) {
      throw invalid(header, `must be at most ${SHORT_STRING_BYTES} bytes`);
    }
    return value;
  };

  const properties: PublishProperties = { contentType: shortString("content-type") ?? DEFAULT_CONTENT_TYPE };
  const contentEncoding = shortString("content-encoding");
  if (contentEncoding !== undefined) properties.contentEncoding = contentEncoding;

  const idempotencyKey = shortString("idempotency-key");
  const messageIdHeader = shortString("x-message-id");
  if (idempotencyKey !== undefined && messageIdHeader !== undefined && idempotencyKey !== messageIdHeader) {
    throw invalid("X-Message-Id", "differs from Idempotency-Key; send one of them");
  }
  const messageId = idempotencyKey ?? messageIdHeader;
  if (messageId !== undefined) properties.messageId = messageId;

  const correlationId = shortString("x-correlation-id");
  if (correlationId !== undefined) properties.correlationId = correlationId;
  const replyTo = shortString("x-reply-to");
  if (replyTo !== undefined) properties.replyTo = replyTo;
  const type = shortString("x-type");
  if (type !== undefined) properties.type = type;

  const priority = found["x-priority"];
  if (priority !== undefined) {
    if (!/^[0-9]$/.test(priority.trim())) throw invalid("X-Priority", `"${priority}" is not a whole number from 0 to 9`);
    properties.priority = Number(priority.trim());
  }
  const expiration = found["x-expiration"];
  if (expiration !== undefined) {
    if (!/^[0-9]{1,10}$/.test(expiration.trim())) throw invalid("X-Expiration", `"${expiration}" is not a number of milliseconds`);
    properties.expiration = String(Number(expiration.trim()));
  }
  if (table) properties.headers = table;
  return properties;
};

const SHORT_STRING_HEADERS = [
  "content-type",
  "content-encoding",
  "idempotency-key",
  "x-message-id",
  "x-correlation-id",
  "x-reply-to",
  "x-type",
] as const;
type ShortStringHeader = (typeof SHORT_STRING_HEADERS)[number];
type PropertyHeader = ShortStringHeader | "x-priority" | "x-expiration";
const PROPERTY_HEADERS = new Set<string>([...SHORT_STRING_HEADERS, "x-priority", "x-expiration"]);

/** Longer than a short string in UTF-8. At most 85 UTF-16 units fit whatever they are, so most values are never encoded. */
const overShortString = (value: string): boolean =>
  value.length * 3 > SHORT_STRING_BYTES && new TextEncoder().encode(value).byteLength > SHORT_STRING_BYTES;
