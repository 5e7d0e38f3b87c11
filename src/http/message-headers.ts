import type { ConsumedMessage } from "../amqp/route-messages";
import { AMQP_HEADER_PREFIX, DEFAULT_CONTENT_TYPE } from "./message-properties";

/** Lists the response headers whose value is percent-encoded UTF-8 because it could not be sent as it is. */
export const ENCODED_HEADER = "X-AMQP-Encoded";
/** Lists the headers-table entries left out because the answer's headers would have grown too large. */
export const OMITTED_HEADER = "X-AMQP-Omitted";

/**
 * Most bytes the headers-table entries may add to an answer (default 8192). Proxies and clients
 * cap response headers (Node's fetch at 16 KiB, many proxies at 8 KiB): past this the entries
 * are left out, and named in {@link OMITTED_HEADER}, rather than make the answer unreadable.
 */
export const TABLE_HEADERS_BUDGET_BYTES = 8192;

/**
 * The response headers for a consumed message: its content type (default `application/json`),
 * its ids, where it came from, whether it was redelivered, how many messages are left, and each
 * headers-table entry as `X-AMQP-Header-<name>`.
 *
 * Never fails, whatever a producer put in the properties: a consume that failed here would leave
 * the message at the head of its queue (every later GET failing the same way) or, with auto-ack,
 * lose it. A value that is not a plain header value (control characters such as CR LF or NUL,
 * non-ASCII text, surrounding spaces) is sent percent-encoded (UTF-8, as `encodeURIComponent`
 * does), and so is a table name that is not an HTTP token; each such header is named in
 * {@link ENCODED_HEADER}, so a client knows to decode it (`decodeURIComponent`). No value can
 * inject a header.
 */
export const messageHeaders = (message: ConsumedMessage): Headers => {
  const headers = new Headers();
  const encoded: string[] = [];
  const put = (name: string, value: string) => {
    if (isPlainValue(value)) headers.set(name, value);
    else {
      headers.set(name, percentEncode(value, VALUE_SAFE));
      encoded.push(name.toLowerCase());
    }
  };
  put("Content-Type", message.contentType ?? DEFAULT_CONTENT_TYPE);
  put("X-Exchange", message.exchange);
  put("X-Routing-Key", message.routingKey);
  headers.set("X-Redelivered", String(message.redelivered));
  if (message.messageId !== undefined) put("X-Message-Id", message.messageId);
  if (message.correlationId !== undefined) put("X-Correlation-Id", message.correlationId);
  if (message.messageCount !== undefined) headers.set("X-Message-Count", String(message.messageCount));

  let budget = TABLE_HEADERS_BUDGET_BYTES;
  const omitted: string[] = [];
  for (const [key, value] of Object.entries(message.headers ?? {})) {
    const text = headerText(value);
    if (text === undefined) continue;
    const token = isToken(key);
    const name = `${AMQP_HEADER_PREFIX}${token ? key : percentEncode(key, TOKEN_SAFE)}`;
    const size = name.length + text.length * 3;
    if (size > budget) {
      omitted.push(key);
      continue;
    }
    budget -= size;
    if (!token) encoded.push(name.toLowerCase());
    put(name, text);
  }
  if (encoded.length > 0) headers.set(ENCODED_HEADER, [...new Set(encoded)].join(", "));
  if (omitted.length > 0) headers.set(OMITTED_HEADER, omittedList(omitted));
  return headers;
};

/** Visible ASCII and inner spaces or tabs: what every HTTP client reads back unchanged. */
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
