import { GatewayError } from "./gateway-error";

/** The messages of a batch request, each the bytes the client sent for it, or null when the body is a single message. */
export type BatchBodies = ArrayBuffer[] | null;

/**
 * Splits a batch request on a route with `producer.batch: true`:
 * - `Content-Type: application/x-ndjson`: each line that is not blank is a message, its bytes as sent
 *   without the line ending; each must be valid JSON;
 * - a JSON body (`application/json`, the default) that is an array: each element is a message, its
 *   bytes as sent, from its first non-whitespace byte to its last. Elements are never parsed and
 *   written back: that would round big numbers, merge duplicate keys, rewrite escapes and replace
 *   invalid UTF-8.
 * Anything else, a JSON object included, is one message. More than `maxBatch` messages is a 413;
 * an empty batch, a body starting with `[` that is not valid JSON or an NDJSON line that is not
 * valid JSON is a 400, naming where; nothing is published then.
 */
export const splitBatch = (body: ArrayBuffer, contentType: string, maxBatch: number, routeId: string): BatchBodies => {
  const mediaType = contentType.split(";")[0]?.trim().toLowerCase() ?? "";
  let messages: ArrayBuffer[];
  if (mediaType === "application/x-ndjson") {
    messages = ndjsonLines(body, maxBatch, routeId);
  } else if (mediaType === "application/json") {
    const bytes = new Uint8Array(body);
    // A byte order mark before "[" would make the batch one message that is not JSON; NDJSON refuses it too.
    if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf && arrayStart(bytes.subarray(3)) !== -1) {
      throw invalid("the body starts with a byte order mark, which JSON does not allow; send it without one", routeId);
    }
    const open = arrayStart(bytes);
    if (open === -1) return null;
    messages = arrayElements(body, open, maxBatch, routeId);
  } else {
    return null;
  }
  if (messages.length === 0) throw new GatewayError(400, "the batch holds no messages", routeId);
  return messages;
};

const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const QUOTE = 0x22;
const COMMA = 0x2c;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

/** JSON's whitespace: exactly these four, so trimming here agrees with what `JSON.parse` skips. */
const isWhitespace = (byte: number | undefined): boolean => byte === SPACE || byte === TAB || byte === LF || byte === CR;

const isBlank = (bytes: Uint8Array, start: number, end: number): boolean => {
  for (let i = start; i < end; i++) if (!isWhitespace(bytes[i])) return false;
  return true;
};

// For validation only: the bytes published are the original ones. Not fatal, so invalid UTF-8
// inside a string is published as sent (JSON.parse sees U+FFFD there); outside a string U+FFFD is
// no JSON token, so it is still refused. ignoreBOM keeps a BOM, which JSON.parse refuses, instead
// of silently dropping it from the text checked but not from the bytes published.
const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

const isJson = (bytes: Uint8Array, start: number, end: number): boolean => {
  try {
    JSON.parse(decoder.decode(bytes.subarray(start, end)));
    return true;
  } catch {
    return false;
  }
};

const invalid = (message: string, routeId: string): GatewayError => new GatewayError(400, `${message}; nothing was published`, routeId);

// Thrown as soon as message maxBatch + 1 starts, so a huge batch is refused without splitting it
// all: the total is therefore not known, only that it is more.
const tooMany = (maxBatch: number, routeId: string): GatewayError =>
  new GatewayError(413, `the batch holds more than ${maxBatch} messages (amqp.producer.max_batch); nothing was published`, routeId);

const ndjsonLines = (body: ArrayBuffer, maxBatch: number, routeId: string): ArrayBuffer[] => {
  const bytes = new Uint8Array(body);
  const lines: ArrayBuffer[] = [];
  for (let start = 0, lineNumber = 1; start < bytes.length; lineNumber++) {
    let newline = bytes.indexOf(LF, start);
    if (newline === -1) newline = bytes.length;
    const end = newline > start && bytes[newline - 1] === CR ? newline - 1 : newline;
    if (!isBlank(bytes, start, end)) {
      if (lines.length === maxBatch) throw tooMany(maxBatch, routeId);
      if (!isJson(bytes, start, end)) throw invalid(`line ${lineNumber} of the NDJSON body is not valid JSON`, routeId);
      lines.push(body.slice(start, end));
    }
    start = newline + 1;
  }
  return lines;
};

/** The offset of the `[` a JSON body starts with, after whitespace, or -1 when it does not start with one. */
const arrayStart = (bytes: Uint8Array): number => {
  for (let i = 0; i < bytes.length; i++) {
    if (isWhitespace(bytes[i])) continue;
    return bytes[i] === OPEN_ARRAY ? i : -1;
  }
  return -1;
};

/**
 * One pass over the bytes after the array's `[` at `open`. The scanner only finds where each
 * element starts and ends: it follows strings (and their escapes, so `"\"],"` does not end one)
 * and the nesting of brackets, and splits at commas outside both. `JSON.parse` then checks each
 * element on its own; together with the checks here on what lies between elements, that makes
 * the whole body valid JSON.
 */
const arrayElements = (body: ArrayBuffer, open: number, maxBatch: number, routeId: string): ArrayBuffer[] => {
  const bytes = new Uint8Array(body);
  const elements: ArrayBuffer[] = [];
  let depth = 0; // brackets open inside the current element
  let inString = false;
  let start = -1; // the current element's first byte, -1 between elements
  // The current element is a whole value (a closed string, array or object, or a scalar followed
  // by whitespace): the next byte outside whitespace must be a comma or the closing bracket.
  let complete = false;
  let lastComma = -1;
  let close = -1; // the array's closing bracket

  const endElement = (at: number): void => {
    let end = at;
    while (end > start && isWhitespace(bytes[end - 1])) end--;
    if (!isJson(bytes, start, end)) {
      throw invalid(`the element at index ${elements.length} (byte offset ${start}) of the JSON array is not valid JSON`, routeId);
    }
    elements.push(body.slice(start, end));
    start = -1;
    complete = false;
  };

  scan: for (let i = open + 1; i < bytes.length; i++) {
    const byte = bytes[i];
    if (inString) {
      if (byte === BACKSLASH) {
        i++; // skips the escaped byte: an escaped quote or backslash does not end the string
      } else if (byte === QUOTE) {
        inString = false;
        if (depth === 0) complete = true;
      }
      continue;
    }
    if (depth > 0) {
      // Inside an element's own array or object only strings and nesting matter here; whether
      // brackets match and the rest is well-formed, JSON.parse checks.
      if (byte === QUOTE) inString = true;
      else if (byte === OPEN_ARRAY || byte === OPEN_OBJECT) depth++;
      else if (byte === CLOSE_ARRAY || byte === CLOSE_OBJECT) {
        depth--;
        if (depth === 0) complete = true;
      }
      continue;
    }
    switch (byte) {
      case SPACE:
      case TAB:
      case LF:
      case CR:
        if (start !== -1) complete = true; // ends a scalar; the other values end themselves
        break;
      case COMMA:
        if (start === -1) throw invalid(`the element at index ${elements.length} of the JSON array is empty (byte offset ${i})`, routeId);
        endElement(i);
        lastComma = i;
        break;
      case CLOSE_ARRAY:
        if (start !== -1) {
          endElement(i);
        } else if (lastComma !== -1) {
          throw invalid(`a trailing comma (byte offset ${lastComma}) follows the last element of the JSON array`, routeId);
        }
        close = i;
        break scan;
      case CLOSE_OBJECT:
        throw invalid(`a "}" at byte offset ${i} of the JSON array closes no object`, routeId);
      default: {
        const opens = byte === QUOTE || byte === OPEN_ARRAY || byte === OPEN_OBJECT;
        if (complete || (start !== -1 && opens)) {
          throw invalid(`a comma is missing after the element at index ${elements.length} of the JSON array (byte offset ${i})`, routeId);
        }
        if (start === -1) {
          if (elements.length === maxBatch) throw tooMany(maxBatch, routeId);
          start = i;
        }
        if (byte === QUOTE) inString = true;
        else if (opens) depth++;
      }
    }
  }

  if (close === -1) {
    const where = start === -1 ? "" : ` inside the element at index ${elements.length}`;
    throw invalid(`the JSON array is not closed: the body ends at byte offset ${bytes.length}${where}`, routeId);
  }
  for (let i = close + 1; i < bytes.length; i++) {
    if (!isWhitespace(bytes[i])) throw invalid(`the body goes on after the JSON array's closing "]" (byte offset ${i})`, routeId);
  }
  return elements;
};
