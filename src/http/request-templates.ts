import type { Context } from "hono";
import { SHORT_STRING_BYTES, utf8Length } from "../contract/frame-limits";
import type { PublishProperties } from "../contract/messages";
import type { ConsumingRoute } from "../config/schema";
import { isTemplate, parseTemplate, renderTemplate, type TemplatePart } from "../config/templates";
import type { GatewayEnv } from "../env";
import { GatewayError } from "./gateway-error";
import { isDirectReplyTo } from "./message-properties";
import type { ConsumerConfig, ConsumingTarget, ProducerConfig } from "../contract/route-settings";

type Render = (c: Context<GatewayEnv>) => string;

/**
 * One field that may take values from the request, compiled once per route: a constant when it
 * has no placeholder, else a function of the request that answers 400 naming what the request
 * lacks, or a value over 255 bytes (an AMQP short string).
 */
const field = (routeId: string, name: string, text: string): Render => {
  if (!isTemplate(text)) return () => text;
  const parsed = parseTemplate(text);
  // The schema has refused anything else.
  const parts: TemplatePart[] = "parts" in parsed ? parsed.parts : [{ kind: "text", text }];
  return (c) => {
    const rendered = renderTemplate(parts, {
      param: (key) => c.req.param(key),
      query: (key) => c.req.query(key),
      header: (key) => c.req.header(key),
    });
    if ("missing" in rendered)
      throw new GatewayError(400, `${name} needs the ${rendered.missing}, which the request does not have`, routeId);
    if (utf8Length(rendered.value) > SHORT_STRING_BYTES) {
      throw new GatewayError(
        400,
        `${name} would be ${utf8Length(rendered.value)} bytes from this request, more than ${SHORT_STRING_BYTES}`,
        routeId,
      );
    }
    return rendered.value;
  };
};

/** Where a publish goes, and the properties the route gives each message, for one request. */
export interface ResolvedProducer {
  exchange: string;
  routingKey: string;
  /** Applied where the request sets no such property. */
  defaults: Pick<PublishProperties, "messageId" | "correlationId" | "type" | "headers">;
}

/** The producer's templates, compiled: `resolve(c)` gives the values for a request. */
export const producerTemplates = (routeId: string, producer: ProducerConfig): ((c: Context<GatewayEnv>) => ResolvedProducer) => {
  const exchange = field(routeId, "exchange", producer.exchange);
  const templatedKey = field(routeId, "routing_key", producer.routing_key);
  // Through the default exchange, such a key addresses a direct reply-to consumer: a crafted one
  // makes RabbitMQ 3.10 close the connection every publish of the route shares (INTERNAL_ERROR).
  const routingKey: Render = isTemplate(producer.routing_key)
    ? (c) => {
        const key = templatedKey(c);
        if (isDirectReplyTo(key)) {
          throw new GatewayError(400, `routing_key "${key.slice(0, 60)}" from this request names RabbitMQ's direct reply-to`, routeId);
        }
        return key;
      }
    : templatedKey;
  const optional = (name: "message_id" | "correlation_id" | "type") => {
    const text = producer[name];
    return text === undefined ? undefined : field(routeId, name, text);
  };
  const [messageId, correlationId, type] = [optional("message_id"), optional("correlation_id"), optional("type")];
  const headers = Object.entries(producer.headers ?? {}).map(([name, text]) => [name, field(routeId, `headers.${name}`, text)] as const);
  return (c) => ({
    exchange: exchange(c),
    routingKey: routingKey(c),
    defaults: {
      ...(messageId ? { messageId: messageId(c) } : {}),
      ...(correlationId ? { correlationId: correlationId(c) } : {}),
      ...(type ? { type: type(c) } : {}),
      ...(headers.length > 0 ? { headers: Object.fromEntries(headers.map(([name, render]) => [name, render(c)])) } : {}),
    },
  });
};

/** The consumer's queue for a request (`inbox.{user}`). */
export const queueTemplate = (routeId: string, consumer: ConsumerConfig): Render => field(routeId, "queue", consumer.queue);

const hasNoDefaults = (defaults: ResolvedProducer["defaults"]): boolean =>
  defaults.messageId === undefined && defaults.correlationId === undefined && defaults.type === undefined && defaults.headers === undefined;

/** `properties` with the route's defaults where the request set none; the request's table entries win. */
export const withDefaults = (properties: PublishProperties, defaults: ResolvedProducer["defaults"]): PublishProperties =>
  hasNoDefaults(defaults)
    ? properties
    : {
        ...properties,
        ...(properties.messageId === undefined && defaults.messageId !== undefined ? { messageId: defaults.messageId } : {}),
        ...(properties.correlationId === undefined && defaults.correlationId !== undefined
          ? { correlationId: defaults.correlationId }
          : {}),
        ...(properties.type === undefined && defaults.type !== undefined ? { type: defaults.type } : {}),
        ...(defaults.headers ? { headers: { ...defaults.headers, ...properties.headers } } : {}),
      };

const queues = new WeakMap<ConsumingRoute, (c: Context<GatewayEnv>) => string>();

/** The route as the object should consume for this request: its queue from the route's template (`inbox.{user}`). */
export const consumingTarget = (c: Context<GatewayEnv>, route: ConsumingRoute): ConsumingTarget => {
  let queueOf = queues.get(route);
  if (!queueOf) queues.set(route, (queueOf = queueTemplate(route.id, route.amqp.consumer)));
  const queue = queueOf(c);
  const consumer = route.amqp.consumer;
  return { id: route.id, amqp: queue === consumer.queue ? route.amqp : { ...route.amqp, consumer: { ...consumer, queue } } };
};
