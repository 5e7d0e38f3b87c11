/**
 * `topology` in routes.yaml: the exchanges, queues and bindings a route needs on its broker,
 * declared (created when missing) or verified (checked, never created) once per connection,
 * before the connection serves its first request. See src/amqp/topology.ts.
 */
import * as v from "valibot";
import { unknownKeyMessage } from "./unknown-key-message";

const strictObject = <const TEntries extends v.ObjectEntries>(entries: TEntries) =>
  v.strictObject(entries, unknownKeyMessage(Object.keys(entries)));

const name = (what: string) =>
  v.pipe(
    v.string(`${what} must be a string`),
    v.minLength(1, `${what} must not be empty`),
    v.check((text) => new TextEncoder().encode(text).length <= 255, `${what} must be at most 255 bytes`),
  );

const flag = (what: string, fallback: boolean) => v.optional(v.boolean(`${what} must be true or false`), fallback);

/** `x-arguments` of a declare or a binding: strings, numbers and booleans, as the broker's table holds them. */
const ArgumentsSchema = v.optional(
  v.record(
    v.pipe(
      v.string(),
      v.check((key) => new TextEncoder().encode(key).length <= 255, "argument names must be at most 255 bytes"),
    ),
    v.union(
      [
        v.string(),
        v.pipe(
          v.number(),
          v.check(
            (value) => Number.isFinite(value) && (!Number.isInteger(value) || Number.isSafeInteger(value)),
            (issue) => `argument value ${String(issue.input)} is not a number the broker can hold exactly (at most 2^53 - 1)`,
          ),
        ),
        v.boolean(),
      ],
      (issue) => `argument values must be strings, numbers or true/false, got ${JSON.stringify(issue.input) ?? String(issue.input)}`,
    ),
    "arguments must be a mapping of names to values",
  ),
  {},
);

const EXCHANGE_TYPES = ["direct", "fanout", "topic", "headers"] as const;

const ExchangeSchema = strictObject({
  name: v.pipe(
    name("name"),
    v.check((text) => !text.startsWith("amq."), "names starting with amq. are reserved by the broker"),
  ),
  /** direct, fanout, topic, headers, or a plugin's type such as x-delayed-message (default direct). */
  type: v.optional(
    v.pipe(
      v.string("type must be a string"),
      v.check(
        (type) => (EXCHANGE_TYPES as readonly string[]).includes(type) || /^x-[\w.-]+$/.test(type),
        (issue) => `type ${String(issue.input)} is not one of ${EXCHANGE_TYPES.join(", ")} (or a plugin's x-... type)`,
      ),
    ),
    "direct",
  ),
  durable: flag("durable", true),
  auto_delete: flag("auto_delete", false),
  internal: flag("internal", false),
  arguments: ArgumentsSchema,
});

const QueueSchema = strictObject({
  name: v.pipe(
    name("name"),
    v.check((text) => !text.startsWith("amq."), "names starting with amq. are reserved by the broker"),
  ),
  durable: flag("durable", true),
  /**
   * Refused when true: an exclusive queue belongs to the one connection that declared it, and a
   * route has several (publishing, consuming, one per shard), so all but one would be locked out.
   */
  exclusive: v.optional(
    v.pipe(
      v.boolean("exclusive must be true or false"),
      v.check(
        (exclusive) => !exclusive,
        "exclusive queues cannot be shared by the route's connections (publishing, consuming, shards); use auto_delete or the x-expires argument",
      ),
    ),
    false,
  ),
  auto_delete: flag("auto_delete", false),
  /** Such as `x-queue-type: quorum`, `x-dead-letter-exchange`, `x-message-ttl`, `x-max-length`, `x-overflow`. */
  arguments: ArgumentsSchema,
});

const BindingSchema = strictObject({
  /** The exchange messages come from; the default exchange `""` cannot be bound. */
  source: name("source"),
  /** The queue (or exchange, with `destination_type: exchange`) they go to. */
  destination: name("destination"),
  destination_type: v.optional(
    v.picklist(["queue", "exchange"], (issue) => `destination_type ${String(issue.input)} is not queue or exchange`),
    "queue",
  ),
  routing_key: v.optional(v.string("routing_key must be a string"), ""),
  arguments: ArgumentsSchema,
});

export const TOPOLOGY_MODES = ["declare", "verify"] as const;

export const TopologySchema = strictObject({
  /** `declare`: create what is missing; `verify`: only check that it exists as described (default declare). */
  mode: v.optional(
    v.picklist(TOPOLOGY_MODES, (issue) => `mode ${String(issue.input)} is not one of ${TOPOLOGY_MODES.join(", ")}`),
    "declare",
  ),
  exchanges: v.optional(v.array(ExchangeSchema, "exchanges must be a list"), []),
  queues: v.optional(v.array(QueueSchema, "queues must be a list"), []),
  bindings: v.optional(v.array(BindingSchema, "bindings must be a list"), []),
});

// Its output is the contract's `TopologyConfig` (src/contract/route-settings.ts): TypeScript checks
// it where a route's backend is built from it (src/config/schema.ts).
