import type { Context } from "hono";
import { SHORT_STRING_BYTES, utf8Length } from "../contract/frame-limits";
import type { IdempotentRequest, PublishManyOutcome } from "../contract/route-calls";
import type { OutgoingMessage, PublishProperties } from "../contract/messages";
import { splitBatch } from "./batch-body";
import type { PublishingRoute } from "../config/schema";
import type { GatewayEnv } from "../env";
import { failureError, GatewayError } from "./gateway-error";
import { DEFAULT_CONTENT_TYPE } from "../contract/header-names";
import { checkPropertiesSize, publishProperties } from "./message-properties";
import { cloudEventMessage } from "./cloudevents";
import { producerTemplates, withDefaults } from "./request-templates";
import { admissionFor, shardFor } from "./access/admission";
import { routeClient } from "./route-client";
import { requestReply } from "./reply-handler";
import { requestBody } from "./request-body";
import { releaseBuffer } from "../release-buffer";
import { checkBodySchema } from "./body-schema";
import type { ProducerConfig, PublishingTarget } from "../contract/route-settings";

/**
 * POST/PUT: publishes the body, byte for byte, and answers 202 only once the broker confirmed it.
 * On a route with `producer.batch`, an NDJSON or JSON-array body is several messages, all
 * confirmed before one 202 with their count; if some were not, the answer has the status of the
 * first failure and lists each failed index. Headers are checked before the route's object is
 * called, and the body's size before this runs ({@link publishBody}).
 */
export const publish = async (c: Context<GatewayEnv>, route: PublishingRoute): Promise<Response> => {
  // Where this request's messages go, from the route's templates (`user.{id}.created`).
  const resolved = templatesOf(route)(c);
  const amqp = objectSide(route);
  const configured = amqp.producer;
  const producer =
    resolved.exchange === configured.exchange && resolved.routingKey === configured.routing_key
      ? configured
      : { ...configured, exchange: resolved.exchange, routing_key: resolved.routingKey };
  // Only the route's id and backend cross to the object; its credentials stay in the Worker.
  const target: PublishingTarget = { id: route.id, amqp: producer === configured ? amqp : { ...amqp, producer } };
  const fromHeaders = publishProperties(c.req.raw.headers, target.id, c.get("trace"));
  const delayMs = publishDelay(c.req.header("x-delay"), route, fromHeaders);
  if (delayMs && producer.exchange === "" && producer.routing_key.startsWith("runway.delay.")) {
    throw new GatewayError(
      400,
      "header X-Delay: runway.delay.* are the gateway's delay queues, not a destination; nothing was published",
      route.id,
    );
  }
  const properties = withDefaults(fromHeaders, resolved.defaults);
  // Read whole, within max_body_bytes, by publishBody, mounted before this.
  const read = await c.req.arrayBuffer();
  try {
    // A CloudEvent (binary or structured mode) is published as the CloudEvents AMQP binding says.
    const event = cloudEventMessage(c.req.raw.headers, properties, read, target.id);
    if (event.event) checkPropertiesSize(event.properties, target.id);
    const { body } = event;
    try {
      if (producer.reply) {
        checkBodySchema(route, [body], false);
        return await requestReply(c, route, target, { body, properties: event.properties });
      }
      return await publishRead(c, {
        route,
        target,
        producer,
        fromHeaders,
        properties: event.properties,
        body,
        delayMs,
        cloudEvent: event.event,
      });
    } finally {
      if (body !== read) releaseBuffer(body);
    }
  } finally {
    // Passed on to the route's object (a copy), or refused: nothing reads it again.
    releaseBuffer(read);
  }
};

/** A publish whose body is read: its route, where it goes, its properties (those the request set, and with the route's defaults). */
interface ReadPublish {
  route: PublishingRoute;
  target: PublishingTarget;
  producer: ProducerConfig;
  fromHeaders: PublishProperties;
  properties: PublishProperties;
  body: ArrayBuffer;
  /** `X-Delay`, in milliseconds (undefined or 0: none). */
  delayMs: number | undefined;
  /** A CloudEvent: one event is one message, on a batch route too. */
  cloudEvent: boolean;
}

/** The rest of a publish, once its body is read. */
const publishRead = async (c: Context<GatewayEnv>, request: ReadPublish): Promise<Response> => {
  const { route, target, producer, fromHeaders, properties, body, delayMs, cloudEvent } = request;
  // The message cannot be published before now, so it cannot arrive before now + the delay.
  const deliverAfter = delayMs ? new Date(Date.now() + delayMs).toISOString() : undefined;
  const batch = producer.batch && !cloudEvent ? splitBatch(body, properties.contentType, producer.max_batch, target.id) : null;
  if (batch) checkBatchMessageIds(properties, batch.length, target.id);
  const messages = batch
    ? batch.map((element, index) => ({ body: element, properties: batchProperties(properties, index) }))
    : [{ body, properties }];
  checkBodySchema(
    route,
    messages.map((message) => message.body),
    batch !== null,
  );

  // One call per request. Coalescing several requests' messages into one call would spare calls,
  // but a Worker request may not wait on I/O that another request started: workerd cancels it
  // as hung (tried: BENCHMARKS.md).
  const admission = admissionFor(c, route);
  // With a dedupe window, the client's Idempotency-Key (not a message_id from the route's templates)
  // names the request, among the requests of the same caller.
  const key = producer.dedupe_window_s > 0 ? fromHeaders.messageId : undefined;
  const idempotency = key === undefined ? undefined : await idempotentRequest(key, c.get("caller") ?? "", producer, messages, delayMs);
  const shard = shardFor(target, admission, idempotency && `${idempotency.caller}\n${idempotency.key}`);
  const { outcomes, refused, replayed } = await routeClient(c.env, target, shard)
    .call("publish", async (object): Promise<PublishManyOutcome> =>
      object.publishMany({
        route: target,
        messages,
        method: c.req.method,
        ...(admission ? { admission } : {}),
        ...(idempotency ? { idempotency } : {}),
        ...(delayMs ? { delayMs } : {}),
      }),
    )
    .finally(() => {
      if (batch) for (const element of batch) releaseBuffer(element);
    });
  if (refused) throw failureError(refused, target.id);
  const failures = outcomes.flatMap((outcome, index) => (outcome.ok ? [] : [{ index, ...outcome }]));
  const [first] = failures;
  if (first && !batch) throw failureError(first, target.id);
  if (first) {
    const details = {
      count: messages.length - failures.length,
      failed: failures.map(({ index, message }) => ({ index, error: message })),
    };
    throw failureError(first, target.id, details, `${failures.length} of ${messages.length} messages were not confirmed: ${first.message}`);
  }
  const count = batch ? { count: messages.length } : {};
  if (replayed) c.header("Idempotent-Replayed", "true");
  const delayed = deliverAfter === undefined ? {} : { deliver_after: deliverAfter };
  return c.json({ status: "published", ...count, exchange: producer.exchange, routing_key: producer.routing_key, ...delayed }, 202);
};

/**
 * The request as the route's idempotency window knows it: its key and caller (`auth` tells callers
 * apart; on a route without it every caller is one), and a fingerprint of what it publishes, so
 * that the same key sent with other content is refused rather than answered with the first
 * request's outcome.
 */
const idempotentRequest = async (
  key: string,
  caller: string,
  producer: ProducerConfig,
  messages: OutgoingMessage[],
  delayMs: number | undefined,
): Promise<IdempotentRequest> => {
  const encoder = new TextEncoder();
  const parts = [encoder.encode(`${producer.exchange}\0${producer.routing_key}\0${messages.length}\0${delayMs ?? 0}\0`)];
  for (const { body } of messages) parts.push(encoder.encode(`${body.byteLength}\0`), new Uint8Array(body));
  const digest = await crypto.subtle.digest("SHA-256", await new Blob(parts).arrayBuffer());
  return {
    key,
    caller,
    fingerprint: [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join(""),
    windowMs: producer.dedupe_window_s * 1000,
    maxEntries: producer.dedupe_max_entries,
    // Where callers are told apart, none may hold more than half: one caller's new keys cannot push out everyone else's.
    maxEntriesPerCaller: caller === "" ? producer.dedupe_max_entries : Math.max(1, Math.ceil(producer.dedupe_max_entries / 2)),
    waitMs: producer.confirm_timeout_ms,
  };
};

/** Longest `X-Delay`: 24 hours. */
export const MAX_PUBLISH_DELAY_MS = 24 * 60 * 60 * 1000;

/**
 * The request's `X-Delay` in milliseconds (0 to 24 h), or undefined without one; a 400 on a route
 * without `producer.allow_delay`, for a value that is not a whole number in range, and with
 * `X-Expiration` (its time to live would run out in the delay queues, and the message arrive early).
 */
const publishDelay = (header: string | undefined, route: PublishingRoute, properties: PublishProperties): number | undefined => {
  if (header === undefined) return undefined;
  const invalid = (reason: string) => new GatewayError(400, `header X-Delay: ${reason}; nothing was published`, route.id);
  if (!route.amqp.producer.allow_delay) throw invalid("this route does not delay messages (amqp.producer.allow_delay is not set)");
  const text = header.trim();
  if (!/^[0-9]{1,8}$/.test(text) || Number(text) > MAX_PUBLISH_DELAY_MS) {
    const shown = header.length > 60 ? `${header.slice(0, 60)}…` : header;
    throw invalid(`"${shown}" is not a whole number of milliseconds from 0 to ${MAX_PUBLISH_DELAY_MS} (24 h)`);
  }
  const delayMs = Number(text);
  if (delayMs > 0 && properties.expiration !== undefined) {
    throw invalid("cannot be combined with X-Expiration: the message's time to live would run out while it waits");
  }
  return delayMs;
};

const objectSides = new WeakMap<PublishingRoute, PublishingRoute["amqp"]>();

/**
 * The route's backend as its object gets it: without `producer.schema`, which only the Worker
 * reads (a schema would otherwise be copied to the object with every publish).
 */
const objectSide = (route: PublishingRoute): PublishingRoute["amqp"] => {
  if (route.amqp.producer.schema === undefined) return route.amqp;
  let amqp = objectSides.get(route);
  if (!amqp) {
    const { schema: _schema, ...producer } = route.amqp.producer;
    objectSides.set(route, (amqp = { ...route.amqp, producer }));
  }
  return amqp;
};

const compiled = new WeakMap<PublishingRoute, ReturnType<typeof producerTemplates>>();

/** The route's producer templates, compiled once. */
const templatesOf = (route: PublishingRoute): ReturnType<typeof producerTemplates> => {
  let templates = compiled.get(route);
  if (!templates) compiled.set(route, (templates = producerTemplates(route.id, route.amqp.producer)));
  return templates;
};

/** Each message's id `<key>-<index>` must still be an AMQP short string: 400 before anything is sent. */
const checkBatchMessageIds = (properties: PublishProperties, count: number, routeId: string): void => {
  if (properties.messageId === undefined) return;
  const longest = utf8Length(properties.messageId) + 1 + String(count - 1).length;
  if (longest > SHORT_STRING_BYTES) {
    throw new GatewayError(
      400,
      `header Idempotency-Key: with the "-${count - 1}" suffix of the batch's last message it would be ${longest} bytes, more than ${SHORT_STRING_BYTES}; nothing was published`,
      routeId,
    );
  }
};

/** A batch element is JSON; an Idempotency-Key becomes `<key>-<index>`, one id per message. */
const batchProperties = (properties: PublishProperties, index: number): PublishProperties => ({
  ...properties,
  contentType: DEFAULT_CONTENT_TYPE,
  ...(properties.messageId === undefined ? {} : { messageId: `${properties.messageId}-${index}` }),
});

/**
 * The publish body, mounted before {@link publish}: bounded by `amqp.producer.max_body_bytes`
 * (413; RabbitMQ closes the channel for a message over its max_message_size, and this keeps such
 * a body from reaching it), and a 400 when the client went away before sending all of it.
 */
export const publishBody = (route: PublishingRoute) => {
  const maxBytes = route.amqp.producer.max_body_bytes;
  return requestBody({
    routeId: route.id,
    maxBytes,
    tooLarge: `the body is larger than ${maxBytes} bytes (amqp.producer.max_body_bytes); nothing was published`,
    nothing: "published",
    route,
    // A batch's elements are copies of its body.
    expansion: route.amqp.producer.batch ? 2 : 1,
  });
};
