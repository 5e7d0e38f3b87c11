import { basicPropertiesBytes, MAX_PROPERTIES_BYTES, SHORT_STRING_BYTES, utf8Length } from "../contract/frame-limits";
import { isGatewayHeader } from "../contract/header-names";
import type { AmqpBasicProperties, TableValue } from "../contract/management-api";
import { GatewayError } from "./gateway-error";
import { isDirectReplyTo, MAX_EXPIRATION_MS } from "./message-properties";

/** How deep a headers table may nest (tables and arrays), well inside any stack. */
const MAX_TABLE_DEPTH = 16;

/** The management API's short-string properties, by their JSON name. */
const SHORT_STRINGS = {
  content_type: "contentType",
  content_encoding: "contentEncoding",
  correlation_id: "correlationId",
  reply_to: "replyTo",
  message_id: "messageId",
  type: "type",
  user_id: "userId",
  app_id: "appId",
} as const;

/**
 * The `properties` of a management API publish as amqp-client sends them, or a 400 naming the
 * property. Checked as the broker's API does (integers for `delivery_mode`, `priority` and
 * `timestamp`, strings for the rest, no null in `headers`), and also for what would make the
 * broker close the channel that every caller's publishes share: an `expiration` that is not
 * digits, a `user_id` that is not the gateway's own broker user, a direct reply-to, `CC`/`BCC`
 * that are not lists, a name or value over a short string, properties over one frame. Unknown
 * names are ignored, as the broker ignores them; `cluster_id`, which amqp-client cannot send, is
 * refused. Strings are made well-formed (a lone surrogate becomes U+FFFD, as its UTF-8 encoding
 * would), so that a returned message is matched to what was sent.
 */
export const managementProperties = (value: unknown, brokerUser: string, routeId: string): AmqpBasicProperties => {
  const invalid = (reason: string) => new GatewayError(400, `properties.${reason}`, routeId);
  // An empty JSON list is the broker's own rendering of no properties: taken back as such.
  if (Array.isArray(value) && value.length === 0) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new GatewayError(400, "properties must be a JSON object", routeId);
  }
  const given = value as Record<string, unknown>;
  const properties: AmqpBasicProperties = {};
  for (const [name, key] of Object.entries(SHORT_STRINGS)) {
    const text = given[name];
    if (text === undefined) continue;
    if (typeof text !== "string") throw invalid(`${name} must be a string`);
    if (utf8Length(text) > SHORT_STRING_BYTES) throw invalid(`${name} must be at most ${SHORT_STRING_BYTES} bytes`);
    // amqp-client leaves an empty string out.
    if (text !== "") properties[key] = wellFormed(text);
  }
  if (properties.replyTo !== undefined && isDirectReplyTo(properties.replyTo)) {
    throw invalid("reply_to is RabbitMQ's direct reply-to, which only a channel consuming from it may name");
  }
  if (properties.userId !== undefined && properties.userId !== brokerUser) {
    throw invalid(`user_id must be the user the gateway connects to the broker as, or absent (the broker refuses any other)`);
  }
  if (given.cluster_id !== undefined) throw invalid("cluster_id is not supported (deprecated in AMQP 0-9-1)");
  const delivery = given.delivery_mode;
  if (delivery !== undefined) {
    if (delivery !== 1 && delivery !== 2) throw invalid("delivery_mode must be 1 (transient) or 2 (persistent)");
    properties.deliveryMode = delivery;
  }
  const priority = given.priority;
  if (priority !== undefined) {
    if (!isWhole(priority, 0, 255)) throw invalid("priority must be a whole number from 0 to 255");
    if (priority !== 0) properties.priority = priority;
  }
  const timestamp = given.timestamp;
  if (timestamp !== undefined) {
    if (!isWhole(timestamp, -8_640_000_000_000, 8_640_000_000_000)) throw invalid("timestamp must be a whole number of seconds since 1970");
    properties.timestamp = new Date(timestamp * 1000);
  }
  const expiration = given.expiration;
  if (expiration !== undefined) {
    if (typeof expiration !== "string" || !/^[0-9]{1,10}$/.test(expiration) || Number(expiration) > MAX_EXPIRATION_MS) {
      throw invalid(`expiration must be a string of milliseconds from "0" to "${MAX_EXPIRATION_MS}"`);
    }
    properties.expiration = String(Number(expiration));
  }
  if (given.headers !== undefined) properties.headers = headersTable(given.headers, invalid);
  const bytes = basicPropertiesBytes(properties);
  if (bytes > MAX_PROPERTIES_BYTES) {
    throw new GatewayError(
      400,
      `the message's properties would take ${bytes} bytes, more than the ${MAX_PROPERTIES_BYTES} that one AMQP frame leaves for them; nothing was published`,
      routeId,
    );
  }
  return properties;
};

/** `headers` as a field table: JSON values, no null, nesting bounded, names within a short string. */
const headersTable = (value: unknown, invalid: (reason: string) => GatewayError): Record<string, TableValue> => {
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw invalid("headers must be a JSON object");
  const table = tableOf(value as Record<string, unknown>, "headers", 1, invalid);
  for (const name of Object.keys(table)) {
    if (isGatewayHeader(name)) throw invalid(`headers.${name} is set by the gateway (delivery counts and delays), not by a publisher`);
    const routing = table[name];
    // RabbitMQ's sender-selected distribution: a list of routing keys, or it closes the channel;
    // and no key of it may address a direct reply-to consumer (see isDirectReplyTo).
    if (name === "CC" || name === "BCC") {
      if (!(Array.isArray(routing) && routing.every((key) => typeof key === "string"))) {
        throw invalid(`headers.${name} must be a list of routing keys (strings)`);
      }
      if (routing.some((key) => isDirectReplyTo(key))) throw invalid(`headers.${name} names RabbitMQ's direct reply-to`);
    }
  }
  return table;
};

const tableOf = (
  table: Record<string, unknown>,
  path: string,
  depth: number,
  invalid: (reason: string) => GatewayError,
): Record<string, TableValue> => {
  const entries: Array<[string, TableValue]> = [];
  for (const [name, item] of Object.entries(table)) {
    if (utf8Length(name) > SHORT_STRING_BYTES) throw invalid(`${path}: a name must be at most ${SHORT_STRING_BYTES} bytes`);
    // amqp-client reads a table into a plain object, where this name sets the prototype: the entry
    // would vanish on the way back (and a returned message would not be recognised as this one).
    if (name === "__proto__") throw invalid(`${path}: __proto__ cannot be a name here`);
    entries.push([wellFormed(name), fieldOf(item, `${path}.${name.slice(0, 60)}`, depth, invalid)]);
  }
  return Object.fromEntries(entries);
};

const fieldOf = (value: unknown, path: string, depth: number, invalid: (reason: string) => GatewayError): TableValue => {
  if (typeof value === "string") return wellFormed(value);
  if (typeof value === "boolean") return value;
  if (typeof value === "number") {
    // A whole number as a long ("l") and any other as a double ("d"), as the broker's API writes
    // them; no infinity (1e400), and no whole number that JavaScript does not hold exactly.
    if (!Number.isFinite(value) || (Number.isInteger(value) && !Number.isSafeInteger(value))) {
      throw invalid(`${path} must be a finite number, and a whole one within ±${Number.MAX_SAFE_INTEGER}`);
    }
    return Number.isInteger(value) ? BigInt(value) : value;
  }
  if (value === null || value === undefined) throw invalid(`${path} is null, which a headers table cannot hold`);
  if (depth >= MAX_TABLE_DEPTH) throw invalid(`${path} nests more than ${MAX_TABLE_DEPTH} levels deep`);
  if (Array.isArray(value)) return value.map((item, index) => fieldOf(item, `${path}[${index}]`, depth + 1, invalid));
  return tableOf(value as Record<string, unknown>, path, depth + 1, invalid);
};

const isWhole = (value: unknown, min: number, max: number): value is number =>
  typeof value === "number" && Number.isInteger(value) && value >= min && value <= max;

/** `text` with each lone surrogate replaced by U+FFFD, as its UTF-8 encoding would have it. */
export const wellFormed = (text: string): string =>
  text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD");
