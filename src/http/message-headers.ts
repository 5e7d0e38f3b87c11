import type { ConsumedMessage } from "../amqp/route-messages";
import { AMQP_HEADER_PREFIX, DEFAULT_CONTENT_TYPE } from "./message-properties";

/**
 * The response headers for a consumed message: its content type (default `application/json`),
 * its ids, where it came from, whether it was redelivered, how many messages are left, and each
 * headers-table entry as `X-AMQP-Header-<name>`.
 */
export const messageHeaders = (message: ConsumedMessage): Headers => {
  const headers = new Headers({
    "Content-Type": message.contentType ?? DEFAULT_CONTENT_TYPE,
    "X-Exchange": message.exchange,
    "X-Routing-Key": message.routingKey,
    "X-Redelivered": String(message.redelivered),
  });
  if (message.messageId !== undefined) headers.set("X-Message-Id", message.messageId);
  if (message.correlationId !== undefined) headers.set("X-Correlation-Id", message.correlationId);
  if (message.messageCount !== undefined) headers.set("X-Message-Count", String(message.messageCount));
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    const text = headerText(value);
    // A header value cannot hold line breaks; such an entry is left out rather than fail the response.
    if (text !== undefined && !/[\r\n]/.test(text)) headers.set(`${AMQP_HEADER_PREFIX}${name}`, text);
  }
  return headers;
};

const headerText = (value: unknown): string | undefined => {
  if (value === null || value === undefined) return undefined;
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  if (value instanceof Date) return value.toISOString();
  try {
    return JSON.stringify(value, (_, item: unknown) => (typeof item === "bigint" ? String(item) : item));
  } catch {
    return undefined;
  }
};
