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
  if (!validator) validators.set(schema, (validator = new Validator(schema, "2020-12")));
  const failed: Array<{ index: number; errors: SchemaFailure[] }> = [];
  for (const [index, body] of bodies.entries()) {
    const errors = failures(validator, body);
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

/** Why `body` fails: not UTF-8 JSON, or the schema's errors (the deepest places first, at most a few). */
const failures = (validator: Validator, body: ArrayBuffer): SchemaFailure[] => {
  let document: unknown;
  try {
    document = JSON.parse(utf8.decode(body));
  } catch {
    return [{ path: "", error: "is not JSON" }];
  }
  const result = validator.validate(document);
  if (result.valid) return [];
  // The validator reports a failure at each level it passed through: the deepest say most.
  const deepest = [...result.errors].sort((a, b) => depth(b) - depth(a));
  const named = new Map<string, string>();
  for (const unit of deepest) {
    const path = pointer(unit.instanceLocation);
    if (!named.has(path)) named.set(path, unit.error);
    if (named.size >= PATHS_NAMED) break;
  }
  return [...named].map(([path, error]) => ({ path, error }));
};

const depth = (unit: OutputUnit): number => unit.instanceLocation.split("/").length;

/** `#/a/0` as a JSON pointer: `/a/0`. */
const pointer = (location: string): string => location.replace(/^#/, "");
