/**
 * A route's AMQP settings as they cross to the route side, resolved: defaults filled in, `${NAME}`
 * read, the top-level topology joined to the route's own. `src/config/` parses routes.yaml into
 * these (its schemas' output is checked against them where a route is built), the HTTP side
 * sends them with every call, and the route side acts on them. Like the rest of
 * `src/contract/`, this module imports nothing of the gateway's.
 */

/** `amqp.producer`: where and how a route publishes. */
export interface ProducerConfig {
  exchange: string;
  routing_key: string;
  message_id?: string | undefined;
  correlation_id?: string | undefined;
  type?: string | undefined;
  headers?: Record<string, string> | undefined;
  persistent: boolean;
  mandatory: boolean;
  confirm_timeout_ms: number;
  batch: boolean;
  max_batch: number;
  /** 0: no `Idempotency-Key` window. */
  dedupe_window_s: number;
  dedupe_max_entries: number;
  reply: boolean;
  reply_timeout_ms: number;
  max_body_bytes: number;
  /** The JSON Schema bodies must match (checked in the Worker; not sent to the route's object). */
  schema?: Record<string, unknown> | undefined;
  /** Whether a publish may carry `X-Delay` (default false: 400). */
  allow_delay: boolean;
}

/** `amqp.consumer`: which queue a route takes from, and how messages are settled. */
export interface ConsumerConfig {
  queue: string;
  auto_ack: boolean;
  ack?: "lease" | undefined;
  lease_timeout_ms: number;
  /** Longest long-poll, in seconds (0: none). */
  wait_s: number;
  stream: boolean;
  max_messages: number;
  /** A message delivered this many times is rejected to its dead letters rather than handed out again (default: no limit). */
  max_deliveries?: number | undefined;
  /** The queue where the route's dead letters land: `GET <path>/dead` and `POST <path>/redrive`. */
  dead_letter_queue?: string | undefined;
  /** Deliver the queue to a webhook instead of serving GETs. */
  push?: PushConfig | undefined;
}

/**
 * `amqp.consumer.push`: deliver the queue to a webhook, at least once, signed (Standard Webhooks).
 * The delivery itself is `src/push/`.
 */
export interface PushConfig {
  /** http(s) URL of the endpoint. */
  url: string;
  /** Standard Webhooks secret, `whsec_` and base64. */
  secret: string;
  /** Deliveries in flight (1 keeps queue order, retries included). */
  concurrency: number;
  /** Per attempt. */
  timeout_ms: number;
  /** Then the message is rejected without requeue: its queue's dead-letter exchange gets it. */
  max_attempts: number;
  /** First retry's delay, doubling with each failed attempt... */
  backoff_ms: number;
  /** ...up to this (before a jitter of at most ±50%). */
  max_backoff_ms: number;
  /** Extra request headers (their values are never logged). */
  headers: Record<string, string>;
}

/** An exchange the route needs: declared, or verified to exist as described. */
export interface ExchangeConfig {
  name: string;
  /** direct, fanout, topic, headers, or a plugin's `x-...` type. */
  type: string;
  durable: boolean;
  auto_delete: boolean;
  internal: boolean;
  arguments: Record<string, string | number | boolean>;
}

/** A queue the route needs (never exclusive: a route has several connections). */
export interface QueueConfig {
  name: string;
  durable: boolean;
  exclusive: boolean;
  auto_delete: boolean;
  arguments: Record<string, string | number | boolean>;
}

export interface BindingConfig {
  source: string;
  destination: string;
  destination_type: "queue" | "exchange";
  routing_key: string;
  arguments: Record<string, string | number | boolean>;
}

/** `topology`: what a connection declares (or verifies) before it serves its first request. */
export interface TopologyConfig {
  mode: "declare" | "verify";
  exchanges: ExchangeConfig[];
  queues: QueueConfig[];
  bindings: BindingConfig[];
}

/** Where a route's Durable Objects may be placed (`location_hint`), as Cloudflare names the regions. */
export const LOCATION_HINTS = ["wnam", "enam", "sam", "weur", "eeur", "apac", "oc", "afr", "me"] as const;

/** The connection-level settings of a route's `amqp`. */
export interface AmqpConnectionConfig {
  heartbeat_s: number;
  connect_timeout_ms: number;
  shards: number;
  location_hint?: (typeof LOCATION_HINTS)[number] | undefined;
  operation_timeout_ms: number;
  idle_disconnect_s: number | "never";
  expected_rps?: number | undefined;
}

/**
 * The AMQP backend of a route the gateway serves: a URL, and a producer, a consumer or both. The
 * rules between fields live here, in the type, so nothing downstream checks them again.
 */
export type AmqpBackend = AmqpConnectionConfig & {
  url: string;
  /** The top-level topology (when there is one), then the route's own, applied in that order. */
  topology: TopologyConfig[];
} & ({ producer: ProducerConfig; consumer?: ConsumerConfig } | { producer?: ProducerConfig; consumer: ConsumerConfig });

/** What a broker connection needs: the name of the object that holds it, and its settings (a route, or the management API). */
export interface BrokerTarget {
  id: string;
  amqp: AmqpConnectionConfig & { url: string; topology: TopologyConfig[] };
}

/** What the route side needs of a route: its id and its resolved AMQP backend. */
export interface RouteTarget {
  id: string;
  amqp: AmqpBackend;
}

/** `R` (a route, or a route's target) known to publish. */
export type PublishingRoute<R extends Pick<RouteTarget, "amqp"> = RouteTarget> = R & { amqp: { producer: ProducerConfig } };
/** `R` known to consume. */
export type ConsumingRoute<R extends Pick<RouteTarget, "amqp"> = RouteTarget> = R & { amqp: { consumer: ConsumerConfig } };

export const publishes = <R extends Pick<RouteTarget, "amqp">>(route: R): route is PublishingRoute<R> => route.amqp.producer !== undefined;
export const consumes = <R extends Pick<RouteTarget, "amqp">>(route: R): route is ConsumingRoute<R> => route.amqp.consumer !== undefined;

/** A route to publish with. */
export type PublishingTarget = PublishingRoute;
/** A route to consume from. */
export type ConsumingTarget = ConsumingRoute;
