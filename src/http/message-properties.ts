import { encodedPropertiesBytes, MAX_PROPERTIES_BYTES, SHORT_STRING_BYTES, utf8Length } from "../contract/frame-limits";
import type { PublishProperties } from "../contract/messages";
import { GatewayError } from "./gateway-error";
import { TRACEPARENT, TRACESTATE, type TraceContext } from "../contract/trace-context";
import {
  AMQP_HEADER_PREFIX,
  DEFAULT_CONTENT_TYPE,
  PROPERTY_HEADERS,
  isGatewayHeader,
  type PropertyHeader,
  type ShortStringHeader,
} from "../contract/header-names";

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
 * A value the broker could not take answers 400 naming the header, before anything is published:
 * a short string over 255 bytes, a table name over 255 bytes, properties that do not fit in one
 * frame, a single-valued header sent twice, and the values for which RabbitMQ closes the channel
 * that every caller of the route publishes on: an expiration over {@link MAX_EXPIRATION_MS} or in
 * any form but digits, and a reply-to naming its direct reply-to. The Fetch API joins a repeated
 * header into one value with ", ", so a comma is how a repeat shows: these headers may not hold
 * one, apart from a quoted parameter of Content-Type. Table entries are strings under lower-case
 * names, so `CC` and `BCC`, which RabbitMQ takes only as lists, cannot be set from a request
 * (`cc` is an ordinary name to it).
 */
export const publishProperties = (headers: Headers, routeId: string, trace?: TraceContext): PublishProperties => {
  const invalid = (header: string, reason: string) => new GatewayError(400, `header ${header}: ${reason}`, routeId);

  // One pass over the request's headers (names come lowercased), rather than a lookup per
  // property: this runs on every publish.
  const found: Partial<Record<PropertyHeader, string>> = {};
  let table: Record<string, string> | undefined;
  for (const [name, value] of headers) {
    if (name.startsWith(AMQP_HEADER_PREFIX)) {
      const key = name.slice(AMQP_HEADER_PREFIX.length);
      if (key === "") throw invalid(name, "names no header");
      if (isGatewayHeader(key)) throw invalid(name, "is set by the gateway (delivery counts and delays), not by a publisher");
      if (key.length > SHORT_STRING_BYTES)
        throw invalid(name, `the name after ${AMQP_HEADER_PREFIX} must be at most ${SHORT_STRING_BYTES} bytes`);
      (table ??= {})[key] = value;
    } else if (PROPERTY_HEADERS.has(name)) {
      if (repeated(name, value)) throw invalid(name, "was sent more than once (or holds a comma); a message has one");
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
  if (replyTo !== undefined) {
    if (isDirectReplyTo(replyTo)) {
      throw invalid(
        "X-Reply-To",
        `"${replyTo.slice(0, 60)}" is RabbitMQ's direct reply-to, which only a channel consuming from it may name (the broker closes the route's channel for it); nothing was published`,
      );
    }
    properties.replyTo = replyTo;
  }
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
    const milliseconds = Number(expiration.trim());
    if (milliseconds > MAX_EXPIRATION_MS) {
      throw invalid(
        "X-Expiration",
        `${milliseconds} is more than ${MAX_EXPIRATION_MS} milliseconds, the most the gateway sends (past its limit RabbitMQ closes the route's channel); nothing was published`,
      );
    }
    // Written as digits alone ("01" is 1): RabbitMQ closes the channel for any other form.
    properties.expiration = String(milliseconds);
  }
  // The request's trace context (W3C names, as OpenTelemetry's AMQP instrumentations read them),
  // which wins over the same names sent as X-AMQP-Header-*; counted in the frame like the rest.
  if (trace) {
    table = { ...table, [TRACEPARENT]: trace.traceparent };
    if (trace.tracestate === undefined) delete table[TRACESTATE];
    else table[TRACESTATE] = trace.tracestate;
  }
  if (table) properties.headers = table;
  checkPropertiesSize(properties, routeId);
  return properties;
};

/** A 400 when `properties` would not fit in one AMQP frame (naming the largest headers-table entry): nothing is sent. */
export const checkPropertiesSize = (properties: PublishProperties, routeId: string): void => {
  const bytes = encodedPropertiesBytes(properties);
  if (bytes <= MAX_PROPERTIES_BYTES) return;
  const largest = Object.entries(properties.headers ?? {}).sort(([, a], [, b]) => b.length - a.length)[0];
  throw new GatewayError(
    400,
    `the message's properties would take ${bytes} bytes, more than the ${MAX_PROPERTIES_BYTES} that one AMQP frame leaves for them` +
      `${largest ? ` (the largest is ${AMQP_HEADER_PREFIX}${largest[0]})` : ""}; nothing was published`,
    routeId,
  );
};

/**
 * Longest `X-Expiration` (2^32 - 1 ms, about 49.7 days). Past its limit RabbitMQ refuses an
 * expiration with a channel error (PRECONDITION_FAILED `value_too_large`), which closes the
 * channel every caller of the route publishes on. The limit was long this one (erlang:send_after's,
 * to which RabbitMQ's JMS client still clamps); 3.10, tested here, takes up to ten years
 * (315360000000, which no 10-digit value reaches). The gateway holds to the smaller.
 */
export const MAX_EXPIRATION_MS = 4_294_967_295;

/** RabbitMQ's direct reply-to pseudo-queue, as the broker matches it: exact, case-sensitive. */
const DIRECT_REPLY_TO = "amq.rabbitmq.reply-to";

/**
 * Whether a reply-to names RabbitMQ's direct reply-to: `amq.rabbitmq.reply-to` itself, which the
 * broker refuses on a channel that does not consume from it by closing that channel
 * (PRECONDITION_FAILED "fast reply consumer does not exist"), or `amq.rabbitmq.reply-to.<key>`,
 * the address of another connection's direct reply-to consumer (the gateway's own reply channel
 * among them), which no HTTP client can own. Other cases are other names: queue names are
 * case-sensitive, and RabbitMQ 3.10 takes `AMQ.RABBITMQ.REPLY-TO` as any other.
 */
export const isDirectReplyTo = (replyTo: string): boolean => replyTo === DIRECT_REPLY_TO || replyTo.startsWith(`${DIRECT_REPLY_TO}.`);

/** A comma where none belongs: outside a quoted string for Content-Type, anywhere for the others. */
const repeated = (name: string, value: string): boolean =>
  name === "content-type" ? value.replace(/"(?:[^"\\]|\\.)*"/g, "").includes(",") : value.includes(",");

/** Longer than a short string in UTF-8. At most 85 UTF-16 units fit whatever they are, so most values are never measured. */
const overShortString = (value: string): boolean => value.length * 3 > SHORT_STRING_BYTES && utf8Length(value) > SHORT_STRING_BYTES;
