import type { PublishProperties } from "../contract/messages";
import { CLOUDEVENTS_PREFIX } from "../contract/header-names";
import { GatewayError } from "./gateway-error";

/** The structured mode's media type (RFC: CloudEvents JSON event format). */
const STRUCTURED = "application/cloudevents+json";
/** HTTP binary mode: each attribute in a header of its own. */
const HTTP_PREFIX = "ce-";
/** What a CloudEvent must have (CloudEvents 1.0). */
const REQUIRED = ["id", "source", "type"] as const;
/** Attributes whose JSON value must be a string (CloudEvents 1.0's required ones). */
const STRING_ATTRIBUTES = new Set(["specversion", "id", "source", "type"]);
/** Longest text of one attribute: it must fit, with its name, in the AMQP frame's properties. */
const MAX_ATTRIBUTE_CHARS = 4096;

/**
 * A publish that is a CloudEvent, as the CloudEvents AMQP binding wants it published: each
 * attribute as a `cloudEvents:<name>` headers-table entry (application property), `datacontenttype`
 * as the message's content type, the data as the body. In HTTP binary mode (`ce-specversion` and
 * the other `ce-*` headers, their values as they came) the body is the data already;
 * in structured mode (`Content-Type: application/cloudevents+json`) the event's JSON is taken
 * apart: `data` (JSON, or text when `datacontenttype` is not JSON) or `data_base64` becomes the
 * body. Anything else is returned as it is. A CloudEvent without `id`, `source`, `type` or with a
 * `specversion` other than 1.0 is a 400, and nothing is published.
 */
export const cloudEventMessage = (
  headers: Headers,
  properties: PublishProperties,
  body: ArrayBuffer,
  routeId: string,
): { properties: PublishProperties; body: ArrayBuffer; event: boolean } => {
  const invalid = (reason: string) => new GatewayError(400, `CloudEvent: ${reason}; nothing was published`, routeId);
  if (headers.has(`${HTTP_PREFIX}specversion`)) {
    const attributes: Record<string, string> = {};
    for (const [name, value] of headers) if (name.startsWith(HTTP_PREFIX)) attributes[name.slice(HTTP_PREFIX.length)] = value;
    checkAttributes(attributes, invalid);
    return { properties: withAttributes(properties, attributes), body, event: true };
  }
  if (mediaType(properties.contentType) !== STRUCTURED) return { properties, body, event: false };
  let event: unknown;
  try {
    event = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(body));
  } catch {
    throw invalid(`a ${STRUCTURED} body must be a JSON object (UTF-8, not nested past what the gateway parses)`);
  }
  if (event === null || typeof event !== "object" || Array.isArray(event)) throw invalid(`a ${STRUCTURED} body must be a JSON object`);
  const { data, data_base64: dataBase64, ...rest } = event as Record<string, unknown>;
  if (data !== undefined && dataBase64 !== undefined) throw invalid("an event has data or data_base64, not both");
  const attributes: Record<string, string> = {};
  for (const [name, value] of Object.entries(rest)) {
    if (value === null || value === undefined) continue;
    if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") {
      throw invalid(`attribute ${name.slice(0, 40)} must be a string, a number or a boolean`);
    }
    if (STRING_ATTRIBUTES.has(name) && typeof value !== "string") throw invalid(`attribute ${name} must be a string`);
    attributes[name] = String(value);
  }
  checkAttributes(attributes, invalid);
  const contentType = attributes["datacontenttype"] ?? (dataBase64 === undefined && data !== undefined ? "application/json" : undefined);
  let bytes: Uint8Array;
  if (dataBase64 !== undefined) {
    if (typeof dataBase64 !== "string") throw invalid("data_base64 must be a base64 string");
    try {
      bytes = Uint8Array.from(atob(dataBase64), (char) => char.charCodeAt(0));
    } catch {
      throw invalid("data_base64 is not base64");
    }
  } else if (data === undefined) bytes = new Uint8Array(0);
  else if (typeof data === "string" && !isJsonType(contentType)) bytes = new TextEncoder().encode(data);
  else {
    try {
      bytes = new TextEncoder().encode(JSON.stringify(data));
    } catch {
      // Nested past the stack (a few kilobytes of brackets do it).
      throw invalid("data is nested too deeply");
    }
  }
  const withType: PublishProperties = { ...properties, contentType: contentType ?? "application/octet-stream" };
  return { properties: withAttributes(withType, attributes), body: bytes.slice().buffer, event: true };
};

const checkAttributes = (attributes: Record<string, string>, invalid: (reason: string) => GatewayError): void => {
  if (attributes["specversion"] !== "1.0")
    throw invalid(`specversion must be 1.0 (it is ${JSON.stringify(attributes["specversion"] ?? null)})`);
  for (const name of REQUIRED) if (!attributes[name]) throw invalid(`${name} is required`);
  for (const [name, value] of Object.entries(attributes)) {
    if (!/^[a-z0-9]{1,20}$/.test(name))
      throw invalid(`attribute name ${JSON.stringify(name.slice(0, 40))} must be 1 to 20 lower-case letters or digits`);
    if (value.length > MAX_ATTRIBUTE_CHARS) throw invalid(`attribute ${name} is longer than ${MAX_ATTRIBUTE_CHARS} characters`);
  }
};

/** The attributes as `cloudEvents:` entries of the headers table; `datacontenttype` is the content type, not an entry. */
const withAttributes = (properties: PublishProperties, attributes: Record<string, string>): PublishProperties => {
  const table: Record<string, string> = { ...properties.headers };
  for (const [name, value] of Object.entries(attributes)) if (name !== "datacontenttype") table[`${CLOUDEVENTS_PREFIX}${name}`] = value;
  return { ...properties, headers: table };
};

const mediaType = (contentType: string): string => (contentType.split(";")[0] ?? "").trim().toLowerCase();
const isJsonType = (contentType: string | undefined): boolean =>
  contentType === undefined || /^application\/(?:[\w.+-]+\+)?json$/i.test(mediaType(contentType));
