import type { HandedMessage } from "../contract/route-calls";
import type { ConsumedMessage } from "../contract/messages";
import { base64 } from "../base64";

/** One message of a `GET ?max=N` answer. */
export interface MessageJson {
  body: string;
  body_encoding: "utf8" | "base64";
  properties: Record<string, unknown>;
  exchange: string;
  routing_key: string;
  redelivered: boolean;
  /** How many times it has been delivered, this time included. */
  delivery_count: number;
  lease_id?: string;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * A message as JSON: the body as text when it is valid UTF-8, else base64 (`body_encoding` says
 * which), its properties under AMQP's names (only those it has), and its headers table made
 * JSON-safe (64-bit integers as strings, bytes as base64, times as ISO 8601).
 */
export const messageJson = ({ message, leaseId }: HandedMessage, leaseIdOf: (id: string) => string): MessageJson => {
  let body: string;
  let encoding: MessageJson["body_encoding"] = "utf8";
  try {
    body = utf8.decode(message.body);
  } catch {
    body = base64(new Uint8Array(message.body));
    encoding = "base64";
  }
  return {
    body,
    body_encoding: encoding,
    properties: propertiesJson(message),
    exchange: message.exchange,
    routing_key: message.routingKey,
    redelivered: message.redelivered,
    delivery_count: message.deliveryCount,
    ...(leaseId === undefined ? {} : { lease_id: leaseIdOf(leaseId) }),
  };
};

const propertiesJson = (message: ConsumedMessage): Record<string, unknown> => {
  const properties: Record<string, unknown> = {
    content_type: message.contentType,
    content_encoding: message.contentEncoding,
    message_id: message.messageId,
    correlation_id: message.correlationId,
    reply_to: message.replyTo,
    type: message.type,
    priority: message.priority,
    expiration: message.expiration,
    timestamp: message.timestamp,
    app_id: message.appId,
    headers: message.headers === undefined ? undefined : jsonSafe(message.headers),
  };
  return Object.fromEntries(Object.entries(properties).filter(([, value]) => value !== undefined));
};

const jsonSafe = (value: unknown): unknown => {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (value instanceof Uint8Array) return base64(value);
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, jsonSafe(item)]));
  }
  return value;
};
