import type { AMQPMessage, AMQPProperties } from "@cloudamqp/amqp-client";
import { base64 } from "../base64";
import type { ManagementGetRequest, ManagementMessage } from "../contract/management-api";

/**
 * A delivery as RabbitMQ's management API shows it in a get's answer (rabbit_mgmt_wm_queue_get),
 * so that what rabbitmqadmin prints for the gateway is what it prints for the broker.
 */

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** `delivery` as the management API shows it: its payload cut to `truncate` bytes, as text when it is UTF-8 and `encoding` is auto. */
export const managementMessage = (delivery: AMQPMessage, request: ManagementGetRequest): ManagementMessage => {
  const body = delivery.body ?? new Uint8Array(0);
  const shown = request.truncate !== undefined && body.byteLength > request.truncate ? body.subarray(0, request.truncate) : body;
  const text = request.encoding === "auto" ? utf8Text(shown) : undefined;
  return {
    payload_bytes: delivery.bodySize,
    redelivered: delivery.redelivered,
    exchange: delivery.exchange,
    routing_key: delivery.routingKey,
    message_count: delivery.messageCount ?? 0,
    properties: shownProperties(delivery.properties),
    payload: text ?? base64(shown),
    payload_encoding: text === undefined ? "base64" : "string",
  };
};

const utf8Text = (bytes: Uint8Array): string | undefined => {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
};

/**
 * The broker's rendering of basic properties (rabbit_mgmt_format:basic_properties): the set ones
 * only, in the reverse of their AMQP order, the timestamp in seconds, the headers table with its
 * keys sorted; `[]` when none is set (an empty Erlang property list).
 */
export const shownProperties = (properties: AMQPProperties): Record<string, unknown> | [] => {
  const shown: Record<string, unknown> = {};
  const set = (name: string, value: unknown) => {
    if (value !== undefined) shown[name] = value;
  };
  set("app_id", properties.appId);
  set("user_id", properties.userId);
  set("type", properties.type);
  set("timestamp", properties.timestamp && tableValue(properties.timestamp));
  set("message_id", properties.messageId);
  set("expiration", properties.expiration);
  set("reply_to", properties.replyTo);
  set("correlation_id", properties.correlationId);
  set("priority", properties.priority);
  set("delivery_mode", properties.deliveryMode);
  set("headers", properties.headers && tableValue(properties.headers));
  set("content_encoding", properties.contentEncoding);
  set("content_type", properties.contentType);
  return Object.keys(shown).length === 0 ? [] : shown;
};

/**
 * A field table value as the broker's API shows it (rabbit_misc:amqp_table): a timestamp in
 * seconds, a byte array as text when it is UTF-8 and as the broker's "Not UTF-8, base64 is: ..."
 * otherwise, a void as "undefined", tables with their keys sorted.
 */
const tableValue = (value: unknown): unknown => {
  if (value instanceof Date) return Math.floor(value.getTime() / 1000);
  if (value instanceof Uint8Array) return utf8Text(value) ?? `Not UTF-8, base64 is: ${base64(value)}`;
  if (value === null || value === undefined) return "undefined";
  if (Array.isArray(value)) return value.map(tableValue);
  if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => byCodePoints(a, b));
    return Object.fromEntries(entries.map(([key, item]) => [key, tableValue(item)]));
  }
  return value;
};

/** `a` against `b` by code points, which is the order of their UTF-8 bytes (the broker's), not of their UTF-16 units. */
const byCodePoints = (a: string, b: string): number => {
  const left = [...a];
  const right = [...b];
  for (let index = 0; index < Math.min(left.length, right.length); index++) {
    const difference = (left[index]?.codePointAt(0) ?? 0) - (right[index]?.codePointAt(0) ?? 0);
    if (difference !== 0) return difference;
  }
  return left.length - right.length;
};
