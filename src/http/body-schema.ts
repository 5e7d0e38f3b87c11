import { Validator, type OutputUnit } from "@cfworker/json-schema";
import type { PublishingRoute } from "../config/schema";
import { GatewayError } from "./gateway-error";

/** Most failing places one 400 names per message, and most messages of a batch it names. */
const PATHS_NAMED = 5;
const ELEMENTS_NAMED = 20;

const validators = new WeakMap<object, Validator>();
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** Where a message fails its route's schema: the place in the document (a JSON pointer, "" for the whole) and why. */
export interface SchemaFailure {
  path: string;
  error: string;
}

/**
 * Checks each body against the route's `producer.schema` (JSON Schema 2020-12), with
 * `@cfworker/json-schema`, which interprets the schema rather than compile it to code (Workers
 * forbid `new Function`): a body that is not JSON, or does not match, is a 400 naming where and
 * why, and nothing is published. In a batch each element is checked, and the 400 names the
 * elements that fail (their index) with theirs.
 */
export const checkBodySchema = (route: PublishingRoute, bodies: ArrayBuffer[], batch: boolean): void => {
  const schema = route.amqp.producer.schema;
  if (!schema) return;
  let validator = validators.get(schema);
  if (!validator) validators.set(schema, (validator = new Validator(withoutFormats(schema) as Record<string, unknown>, "2020-12")));
  const failed: Array<{ index: number; errors: SchemaFailure[] }> = [];
  for (const [index, body] of bodies.entries()) {
    const errors = failures(validator, body, route.id);
    if (errors.length > 0) failed.push({ index, errors });
    if (failed.length >= ELEMENTS_NAMED) break;
  }
  const [first] = failed;
  if (!first) return;
  const summary = first.errors.map(({ path, error }) => `${path || "(the document)"}: ${error}`).join("; ");
  if (!batch) {
    throw new GatewayError(400, `the body does not match the route's schema: ${summary}; nothing was published`, route.id, undefined, {
      errors: first.errors,
    });
  }
  throw new GatewayError(
    400,
    `${failed.length}${failed.length >= ELEMENTS_NAMED ? " or more" : ""} of ${bodies.length} messages do not match the route's schema (the first, at index ${first.index}: ${summary}); nothing was published`,
    route.id,
    undefined,
    { failed },
  );
};

/** Why `body` fails: not UTF-8 JSON, or the schema's errors (the deepest places first, at most a few, each cut to a few hundred characters). */
const failures = (validator: Validator, body: ArrayBuffer, routeId: string): SchemaFailure[] => {
  const bytes = new Uint8Array(body);
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf)
    return [{ path: "", error: "starts with a byte-order mark, which JSON does not allow" }];
  let document: unknown;
  try {
    document = JSON.parse(utf8.decode(body));
  } catch {
    return [{ path: "", error: "is not JSON" }];
  }
  let result: ReturnType<Validator["validate"]>;
  try {
    result = validator.validate(document);
  } catch (error) {
    // A recursive schema walks as deep as the body goes: past the stack, that is the body's doing.
    if (error instanceof RangeError) return [{ path: "", error: "is nested too deeply to be checked against the route's schema" }];
    throw new GatewayError(
      500,
      `the route's schema could not be applied: ${cut(error instanceof Error ? error.message : String(error))}; nothing was published`,
      routeId,
    );
  }
  if (result.valid) return [];
  // The validator reports a failure at each level it passed through: the deepest say most.
  const deepest = [...result.errors].sort((a, b) => depth(b) - depth(a));
  const named = new Map<string, string>();
  for (const unit of deepest) {
    const path = cut(pointer(unit.instanceLocation));
    if (!named.has(path)) named.set(path, cut(unit.error));
    if (named.size >= PATHS_NAMED) break;
  }
  return [...named].map(([path, error]) => ({ path, error }));
};

/** Most characters of one place or reason in a 400: an error may quote a whole enum, a key may be a megabyte. */
const SHOWN_CHARS = 200;
const cut = (text: string): string => (text.length > SHOWN_CHARS ? `${text.slice(0, SHOWN_CHARS)}…` : text);

/**
 * The schema without `format` assertions. In JSON Schema 2020-12 `format` is an annotation unless
 * a schema asks for the format-assertion vocabulary, and the validator's format checks are
 * regular expressions whose cost grows steeply with a crafted value (`format: url`): the check
 * would hold the isolate's CPU for every other request.
 */
const withoutFormats = (schema: unknown): unknown => {
  if (schema === null || typeof schema !== "object" || Array.isArray(schema)) return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema as Record<string, unknown>)) {
    if (key === "format") continue;
    if (SCHEMA_MAPS.has(key) && value !== null && typeof value === "object" && !Array.isArray(value)) {
      out[key] = Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([name, sub]) => [name, withoutFormats(sub)]));
    } else if (SCHEMA_LISTS.has(key) && Array.isArray(value)) out[key] = value.map(withoutFormats);
    else if (SCHEMA_VALUES.has(key)) out[key] = withoutFormats(value);
    else out[key] = value;
  }
  return out;
};

/** Where a schema holds subschemas: by name, in a list, or as the value itself. */
const SCHEMA_MAPS = new Set(["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"]);
const SCHEMA_LISTS = new Set(["prefixItems", "allOf", "anyOf", "oneOf"]);
const SCHEMA_VALUES = new Set([
  "items",
  "additionalProperties",
  "contains",
  "not",
  "if",
  "then",
  "else",
  "propertyNames",
  "unevaluatedItems",
  "unevaluatedProperties",
  "additionalItems",
]);

const depth = (unit: OutputUnit): number => unit.instanceLocation.split("/").length;

/** `#/a/0` as a JSON pointer: `/a/0`. */
const pointer = (location: string): string => location.replace(/^#/, "");
