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
  const shortString = (header: string): string | undefined => {
    const value = headers.get(header) ?? undefined;
    if (value !== undefined && new TextEncoder().encode(value).byteLength > SHORT_STRING_BYTES) {
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

  const priority = headers.get("x-priority");
  if (priority !== null) {
    if (!/^[0-9]$/.test(priority.trim())) throw invalid("X-Priority", `"${priority}" is not a whole number from 0 to 9`);
    properties.priority = Number(priority.trim());
  }
  const expiration = headers.get("x-expiration");
  if (expiration !== null) {
    if (!/^[0-9]{1,10}$/.test(expiration.trim())) throw invalid("X-Expiration", `"${expiration}" is not a number of milliseconds`);
    properties.expiration = String(Number(expiration.trim()));
  }

  const table: Record<string, string> = {};
  for (const [name, value] of headers) {
    if (!name.startsWith(AMQP_HEADER_PREFIX)) continue;
    const key = name.slice(AMQP_HEADER_PREFIX.length);
    if (key === "") throw invalid(name, "names no header");
    table[key] = value;
  }
  if (Object.keys(table).length > 0) properties.headers = table;
  return properties;
};
