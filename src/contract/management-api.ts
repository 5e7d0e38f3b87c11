/**
 * RabbitMQ's management API dialect (`management_api` in routes.yaml) as it crosses between the
 * Worker and the management API's object: what a publish and a get ask for, and the messages a
 * get answers with, already in the management API's JSON shape. Plain structured-clonable data;
 * like the rest of `src/contract/`, this module imports nothing of the gateway's.
 */
import type { RouteFailure } from "./failures";
import type { Admission } from "./route-calls";
import type { BrokerTarget } from "./route-settings";

/** The name the management API gives the default exchange (`""`) in its paths. */
export const DEFAULT_EXCHANGE_NAME = "amq.default";

/** What `POST /api/queues/{vhost}/{queue}/get` does with what it took: the broker's four modes. */
export const ACK_MODES = ["ack_requeue_true", "ack_requeue_false", "reject_requeue_true", "reject_requeue_false"] as const;
export type AckMode = (typeof ACK_MODES)[number];

/** Most messages one get takes (the broker's own API has no limit; a route object's memory does). */
export const MAX_GET_COUNT = 1000;

/** The broker the management API reaches, as the route side needs it: its object's name and its connection settings. */
export type ManagementTarget = BrokerTarget;

/** A value of an AMQP field table, as the management API's JSON gives it (null is refused before; whole numbers as bigint, sent as longs). */
export type TableValue = string | number | bigint | boolean | TableValue[] | { [name: string]: TableValue };

/** AMQP basic properties, ready for amqp-client (`timestamp` as a Date of whole seconds). */
export interface AmqpBasicProperties {
  contentType?: string;
  contentEncoding?: string;
  headers?: Record<string, TableValue>;
  deliveryMode?: number;
  priority?: number;
  correlationId?: string;
  replyTo?: string;
  expiration?: string;
  messageId?: string;
  timestamp?: Date;
  type?: string;
  userId?: string;
  appId?: string;
}

/** `POST /api/exchanges/{vhost}/{exchange}/publish`, checked: one message, mandatory, confirmed. */
export interface ManagementPublishRequest {
  target: ManagementTarget;
  /** The AMQP name (`""` for `amq.default`). */
  exchange: string;
  routingKey: string;
  body: ArrayBuffer;
  properties: AmqpBasicProperties;
  admission?: Admission;
}

/** `{"routed": bool}` once the broker confirmed the message: whether a queue took it. */
export type ManagementPublishOutcome = { ok: true; routed: boolean } | RouteFailure;

/** `POST /api/queues/{vhost}/{queue}/get`, checked. */
export interface ManagementGetRequest {
  target: ManagementTarget;
  queue: string;
  count: number;
  ackmode: AckMode;
  encoding: "auto" | "base64";
  /** Most payload bytes shown per message (`payload_bytes` stays the whole size). */
  truncate?: number;
  /** Most body bytes taken in all, the first message whatever its size (the Worker's room for the answer). */
  maxBytes: number;
  admission?: Admission;
}

/** One message as the management API shows it; `properties` is `[]` when the message has none, as the broker answers. */
export interface ManagementMessage {
  payload_bytes: number;
  redelivered: boolean;
  exchange: string;
  routing_key: string;
  message_count: number;
  properties: Record<string, unknown> | [];
  payload: string;
  payload_encoding: "string" | "base64";
}

/** The messages taken, in the management API's shape, or why none were. */
export type ManagementGetOutcome = { ok: true; messages: ManagementMessage[] } | RouteFailure;
