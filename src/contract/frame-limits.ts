/**
 * The AMQP 0-9-1 size limits a message must meet before it is sent, computed exactly as
 * amqp-client encodes a publish. A message that breaks one is refused in the Worker with a 400
 * naming the header, before the route's object is called: sent as it is, the client library
 * fails while encoding it (after the gateway has counted it as sent) or the broker closes the
 * connection, which fails every other publish in flight on it.
 */
import type { PublishProperties } from "./messages";
import type { AmqpBasicProperties } from "./management-api";

/** Longest AMQP short string in bytes (ids, types, table keys, exchange and routing key). */
export const SHORT_STRING_BYTES = 255;

/**
 * The frame size the gateway asks the broker for (RabbitMQ's maximum and default). A broker that
 * negotiates a smaller one is caught in the route's object instead (amqp-client as patched refuses
 * a header frame over the negotiated size before sending it).
 */
const FRAME_MAX_BYTES = 131_072;

/** A content header frame without properties: frame header (7), class, weight, body size (12), flags (2), frame end (1). */
const HEADER_FRAME_OVERHEAD = 22;

/** The most bytes a message's properties may take in one content header frame. */
export const MAX_PROPERTIES_BYTES = FRAME_MAX_BYTES - HEADER_FRAME_OVERHEAD;

/** Bytes of `text` in UTF-8, without encoding it. */
export const utf8Length = (text: string): number => {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
};

const shortString = (value: string | undefined): number => (value ? 1 + utf8Length(value) : 0);

/**
 * Bytes the properties take in the content header frame, delivery mode included, as
 * amqp-client's `setProperties` writes them (string table values as long strings).
 */
export const encodedPropertiesBytes = (properties: PublishProperties): number => {
  let bytes = 2 /* flags */ + 1; /* delivery mode */
  bytes += shortString(properties.contentType) + shortString(properties.contentEncoding);
  if (properties.headers) {
    bytes += 4;
    for (const [key, value] of Object.entries(properties.headers)) bytes += 1 + utf8Length(key) + 1 + 4 + utf8Length(value);
  }
  if (properties.priority) bytes += 1;
  bytes += shortString(properties.correlationId) + shortString(properties.replyTo) + shortString(properties.expiration);
  bytes += shortString(properties.messageId) + shortString(properties.type);
  return bytes;
};

/** Bytes one field-table value takes as amqp-client (as patched) writes it: its type octet and its value. */
export const fieldBytes = (value: unknown): number => {
  if (typeof value === "string") return 1 + 4 + utf8Length(value);
  if (typeof value === "boolean") return 2;
  if (typeof value === "bigint") return 9;
  if (typeof value === "number") return Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31 ? 5 : 9;
  if (value instanceof Date) return 9;
  if (Array.isArray(value)) return 1 + 4 + value.reduce((sum: number, item) => sum + fieldBytes(item), 0);
  if (value !== null && typeof value === "object") return 1 + tableBytes(value as Record<string, unknown>);
  return 1;
};

/** Bytes a field table takes: its length, then each key (a short string) and value. */
export const tableBytes = (table: Record<string, unknown>): number =>
  Object.entries(table).reduce((sum, [key, value]) => sum + 1 + utf8Length(key) + fieldBytes(value), 4);

/** Bytes any basic properties take in the content header frame (the management API's publish sets them all). */
export const basicPropertiesBytes = (properties: AmqpBasicProperties): number =>
  2 +
  shortString(properties.contentType) +
  shortString(properties.contentEncoding) +
  (properties.headers ? tableBytes(properties.headers) : 0) +
  (properties.deliveryMode ? 1 : 0) +
  (properties.priority ? 1 : 0) +
  shortString(properties.correlationId) +
  shortString(properties.replyTo) +
  shortString(properties.expiration) +
  shortString(properties.messageId) +
  (properties.timestamp ? 8 : 0) +
  shortString(properties.type) +
  shortString(properties.userId) +
  shortString(properties.appId);
