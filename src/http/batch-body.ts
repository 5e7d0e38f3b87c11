import { GatewayError } from "./gateway-error";

/** The messages of a batch request, or null when the body is a single message. */
export type BatchBodies = ArrayBuffer[] | null;

const encoder = new TextEncoder();

/**
 * Splits a batch request on a route with `producer.batch: true`:
 * - `Content-Type: application/x-ndjson`: each non-empty line is a message, its bytes as sent;
 * - a JSON body (`application/json`, the default) that is an array: each element is a message,
 *   written back as compact JSON.
 * Anything else, a JSON object included, is one message. More than `maxBatch` messages is a 413,
 * an empty batch a 400, an unparsable JSON array a 400; nothing is published then.
 */
export const splitBatch = (body: ArrayBuffer, contentType: string, maxBatch: number, routeId: string): BatchBodies => {
  const mediaType = contentType.split(";")[0]?.trim().toLowerCase() ?? "";
  let messages: ArrayBuffer[];
  if (mediaType === "application/x-ndjson") {
    messages = ndjsonLines(new Uint8Array(body));
  } else if (mediaType === "application/json" && startsWithBracket(new Uint8Array(body))) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder().decode(body));
    } catch {
      throw new GatewayError(400, "the body starts like a JSON array but is not valid JSON; nothing was published", routeId);
    }
    if (!Array.isArray(parsed)) return null;
    messages = parsed.map((element) => encoder.encode(JSON.stringify(element)).buffer as ArrayBuffer);
  } else {
    return null;
  }
  if (messages.length === 0) throw new GatewayError(400, "the batch holds no messages", routeId);
  if (messages.length > maxBatch) {
    throw new GatewayError(
      413,
      `the batch holds ${messages.length} messages, more than ${maxBatch} (amqp.producer.max_batch); nothing was published`,
      routeId,
    );
  }
  return messages;
};

const startsWithBracket = (bytes: Uint8Array): boolean => {
  for (const byte of bytes) {
    if (byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d) continue;
    return byte === 0x5b; // "["
  }
  return false;
};

const ndjsonLines = (bytes: Uint8Array): ArrayBuffer[] => {
  const lines: ArrayBuffer[] = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i < bytes.length && bytes[i] !== 0x0a) continue;
    let end = i;
    if (end > start && bytes[end - 1] === 0x0d) end--;
    if (end > start) lines.push(bytes.slice(start, end).buffer);
    start = i + 1;
  }
  return lines;
};
