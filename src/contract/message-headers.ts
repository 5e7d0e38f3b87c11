import type { ConsumedMessage } from "./messages";
import { AMQP_HEADER_PREFIX, CLOUDEVENTS_PREFIX, DEFAULT_CONTENT_TYPE } from "./header-names";
import { untrustedBodyHeaders } from "./untrusted-body";
import { TRACEPARENT, TRACESTATE, canonicalTraceparent, isPassableTracestate } from "./trace-context";

/** Lists the response headers whose value is percent-encoded UTF-8 because it could not be sent as it is. */
export const ENCODED_HEADER = "X-AMQP-Encoded";
/** Lists the headers-table entries left out because the answer's headers would have grown too large. */
export const OMITTED_HEADER = "X-AMQP-Omitted";

/**
 * Most bytes of headers an answer may carry for a message's properties, names and values of every
 * header above included (default 8192). Proxies and clients cap response headers (Node's fetch at
 * 16 KiB, many proxies at 8 KiB): past this the headers-table entries that do not fit are left
 * out, and named in {@link OMITTED_HEADER}, rather than make the answer unreadable. The fixed
 * properties take at most about 4 KiB even percent-encoded (each is at most 255 bytes).
 */
export const HEADERS_BUDGET_BYTES = 8192;

/** Kept free for {@link OMITTED_HEADER} itself, which is cut to about this length. */
const OMITTED_RESERVE_BYTES = 1100;

/**
 * The response headers for a consumed message: its content type (default `application/json`)
 * with the headers that keep a browser from running it ({@link untrustedBodyHeaders}), its ids, where it came from, whether it was redelivered and how many times it has been delivered, how many messages are left, and each
 * headers-table entry as `X-AMQP-Header-<name>` (a CloudEvent's `cloudEvents:<attribute>` entries
 * as `ce-<attribute>`, the CloudEvents HTTP binding's binary mode).
 *
 * Never fails, whatever a producer put in the properties: a consume that failed here would leave
 * the message at the head of its queue (every later GET failing the same way) or, with auto-ack,
 * lose it. A value that is not a plain header value (control characters such as CR LF or NUL,
 * non-ASCII text, surrounding spaces) is sent percent-encoded (UTF-8, as `encodeURIComponent`
 * does), and so is a table name that is not an HTTP token; each such header is named in
 * {@link ENCODED_HEADER}, so a client knows to decode it (`decodeURIComponent`). No value can
 * inject a header, and all of them together stay within {@link HEADERS_BUDGET_BYTES}.
 */
export const messageHeaders = (message: Omit<ConsumedMessage, "body">, { reply = false }: { reply?: boolean } = {}): Headers =>
  new Headers(messageHeaderFields(message, { reply }));

/**
 * The same headers as a plain record, names in lower case. With `push`, for a push's POST: a
 * message without a content type gets none here (the push sends bytes as bytes), and the headers
 * that only a browser reading an answer needs ({@link untrustedBodyHeaders}) are left out. A push
 * takes these for every message: a record costs less than a `Headers` turned into one.
 */
export const messageHeaderFields = (
  message: Omit<ConsumedMessage, "body">,
  { reply = false, push = false }: { reply?: boolean; push?: boolean } = {},
): Record<string, string> => {
  const headers: Record<string, string> = {};
  const encoded: string[] = [];
  // Bytes used so far: each header's name, value and ": \r\n", and its place in the encoded list.
  let used = 0;
  const costOf = (name: string, shown: string, listed: boolean) => name.length + shown.length + 4 + (listed ? name.length + 2 : 0);
  const put = (name: string, shown: string, listed: boolean) => {
    headers[name.toLowerCase()] = shown;
    used += costOf(name, shown, listed);
    if (listed) encoded.push(name.toLowerCase());
  };
  const putProperty = (name: string, value: string) => {
    const shown = shownValue(value);
    put(name, shown, shown !== value);
  };
  // A reply (request/reply) is not a delivery from a queue the client knows: where it came through
  // (the gateway's own reply channel) says nothing to the client, and a reply without a content
  // type is bytes, not JSON.
  const contentType = message.contentType ?? (push ? undefined : reply ? "application/octet-stream" : DEFAULT_CONTENT_TYPE);
  if (contentType !== undefined) putProperty("Content-Type", contentType);
  // The body is a producer's: a browser that opens it must run nothing in the gateway's origin.
  if (!push) for (const [name, value] of untrustedBodyHeaders(headers["content-type"] ?? "")) put(name, value, false);
  if (!reply) {
    putProperty("X-Exchange", message.exchange);
    putProperty("X-Routing-Key", message.routingKey);
    putProperty("X-Redelivered", String(message.redelivered));
    putProperty("X-Delivery-Count", String(message.deliveryCount));
  }
  if (message.messageId !== undefined) putProperty("X-Message-Id", message.messageId);
  if (message.correlationId !== undefined) putProperty("X-Correlation-Id", message.correlationId);
  if (message.messageCount !== undefined && !reply) putProperty("X-Message-Count", String(message.messageCount));
  // Its trace context, as W3C Trace Context names it, where it carries a valid one.
  const rawTraceparent = message.headers?.[TRACEPARENT];
  const traceparent = typeof rawTraceparent === "string" ? canonicalTraceparent(rawTraceparent) : undefined;
  if (traceparent !== undefined) {
    put("traceparent", traceparent, false);
    const tracestate = message.headers?.[TRACESTATE];
    if (typeof tracestate === "string" && isPassableTracestate(tracestate)) put("tracestate", tracestate.trim(), false);
  }

  const budget = HEADERS_BUDGET_BYTES - OMITTED_RESERVE_BYTES - ENCODED_HEADER.length - 4;
  const omitted: string[] = [];
  for (const [key, value] of Object.entries(message.headers ?? {})) {
    const text = headerText(value);
    if (text === undefined) continue;
    // A CloudEvent's attribute (its AMQP binding) is answered in the HTTP binding's binary mode: `ce-<name>`.
    const attribute = key.startsWith(CLOUDEVENTS_PREFIX) ? key.slice(CLOUDEVENTS_PREFIX.length) : undefined;
    const token = isToken(attribute ?? key);
    const shownKey = token ? (attribute ?? key) : percentEncode(attribute ?? key, TOKEN_SAFE);
    const name = attribute === undefined ? `${AMQP_HEADER_PREFIX}${shownKey}` : `ce-${shownKey}`;
    const shown = shownValue(text);
    const listed = !token || shown !== text;
    if (used + costOf(name, shown, listed) > budget) {
      omitted.push(key);
      continue;
    }
    put(name, shown, listed);
  }
  if (encoded.length > 0) headers[ENCODED_HEADER.toLowerCase()] = encoded.join(", ");
  if (omitted.length > 0) headers[OMITTED_HEADER.toLowerCase()] = omittedList(omitted);
  return headers;
};

/** The value as it can be sent: as it is when plain, else percent-encoded. */
const shownValue = (value: string): string => (isPlainValue(value) ? value : percentEncode(value, VALUE_SAFE));

/** Visible ASCII and inner spaces or tabs: what every HTTP client reads back unchanged. */
// eslint-disable-next-line no-control-regex -- the tab is the point: it may appear inside a value.
const isPlainValue = (value: string): boolean => /^(?:[\x21-\x7e](?:[\x20\x09]*[\x21-\x7e])*)?$/.test(value);

const isToken = (name: string): boolean => /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name);

/** Bytes left as they are: RFC 3986's unreserved characters (in values) or token characters but `%` (in names). */
const VALUE_SAFE = /[A-Za-z0-9\-._~]/;
const TOKEN_SAFE = /[!#$&'*+\-.^_`|~0-9A-Za-z]/;

const encoder = new TextEncoder();

/** Percent-encodes the UTF-8 bytes of `text` (a lone surrogate becomes U+FFFD, where encodeURIComponent would throw). */
const percentEncode = (text: string, safe: RegExp): string => {
  let out = "";
  for (const byte of encoder.encode(text)) {
    const char = String.fromCharCode(byte);
    out += byte < 0x80 && safe.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
};

/** The omitted names, encoded, and cut to about a kilobyte (a message may have thousands). */
const omittedList = (keys: string[]): string => {
  let list = "";
  for (const [i, key] of keys.entries()) {
    const name = percentEncode(key, TOKEN_SAFE);
    if (list.length + name.length > 1024) return `${list}, ... (${keys.length} in all)`;
    list += i === 0 ? name : `, ${name}`;
  }
  return list;
};

const headerText = (value: unknown): string | undefined => {
  if (value === null || value === undefined) return undefined;
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value.toISOString();
  if (value instanceof Uint8Array) return JSON.stringify(Array.from(value));
  try {
    return JSON.stringify(value, (_, item: unknown) => (typeof item === "bigint" ? String(item) : item));
  } catch {
    return undefined;
  }
};
