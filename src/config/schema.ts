/**
 * The single definition of `routes.yaml`. Types, defaults and normalisation all come from here:
 * the Worker only ever sees the parsed output ({@link GatewayConfig}), never the raw YAML.
 *
 * Every object is strict, so a misspelt key is an error instead of a silently ignored option.
 */
import * as v from "valibot";
import { accessEntries, AdminSchema, type AuthConfig, type CorsConfig, type RateLimitConfig } from "./access-schema";
import { badReferenceProblem } from "./env-references";
import { isTemplate, templateProblem } from "./templates";
import { isGatewayHeader } from "../contract/header-names";
import { TopologySchema } from "./topology-schema";
import { PushSchema } from "./push-schema";
import {
  LOCATION_HINTS,
  type AmqpBackend,
  type ConsumingRoute as Consuming,
  type PublishingRoute as Publishing,
} from "../contract/route-settings";
import { unknownKeyMessage } from "./unknown-key-message";
import { amqpUrlProblem } from "./amqp-url";
import { MANAGEMENT_API_ID, ManagementApiSchema } from "./management-api-schema";

export { amqpUrlProblem };

/** Methods a route may list. HEAD and OPTIONS are refused: HEAD would discard a message. */
export const ROUTE_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"] as const;
export type RouteMethod = (typeof ROUTE_METHODS)[number];

/**
 * The other innermost handlers of runway's configuration format. They are known keys so that a route using one
 * gets a precise refusal instead of "unknown key".
 */
export const FOREIGN_HANDLERS = [
  "backends",
  "service",
  "upstream",
  "echo",
  "static",
  "fastcgi",
  "sequential",
  "aggregate",
  "lambda",
  "pubsub",
] as const;

const strictObject = <const TEntries extends v.ObjectEntries>(entries: TEntries) =>
  v.strictObject(entries, unknownKeyMessage(Object.keys(entries)));

const positiveInteger = (what: string) =>
  v.pipe(v.number(`${what} must be a number`), v.integer(`${what} must be a whole number`), v.minValue(1, `${what} must be at least 1`));

/** RabbitMQ's default `max_message_size`; a larger message would close the publishing channel. */
export const BROKER_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/**
 * A route's objects close their broker connections after this many seconds without a request.
 * A minute: long enough that a route in steady use never reconnects between requests, short
 * enough that an idle route stops being billed soon (Cloudflare evicts an object without a socket
 * within 70-140 s), and the first request after it pays one connect (BENCHMARKS.md).
 */
export const DEFAULT_IDLE_DISCONNECT_S = 60;
/** Longest `idle_disconnect_s`: a day (beyond 15 minutes Cloudflare evicts the object anyway). */
export const MAX_IDLE_DISCONNECT_S = 24 * 60 * 60;

/** Most Durable Objects one route's traffic may be spread over. */
export const MAX_SHARDS = 64;

/** Longest idempotency window: 24 hours. */
export const MAX_DEDUPE_WINDOW_S = 24 * 60 * 60;

/** Longest wait for a reply: one minute. */
export const MAX_REPLY_TIMEOUT_MS = 60_000;

const ProducerSchema = v.pipe(
  strictObject({
    /** Exchange to publish to; `""` (the default) is the broker's default exchange. May take values from the request (`{name}`). */
    exchange: v.optional(v.string("exchange must be a string"), ""),
    /** Routing key of every published message (default `""`). May take values from the request: `user.{id}.created`. */
    routing_key: v.optional(v.string("routing_key must be a string"), ""),
    /** `message_id`, `correlation_id` and `type` of each message, when the request sets none; may take values from the request. */
    message_id: v.optional(v.pipe(v.string("message_id must be a string"), v.minLength(1, "message_id must not be empty"))),
    correlation_id: v.optional(v.pipe(v.string("correlation_id must be a string"), v.minLength(1, "correlation_id must not be empty"))),
    type: v.optional(v.pipe(v.string("type must be a string"), v.minLength(1, "type must not be empty"))),
    /**
     * Entries of each message's headers table (the request's `X-AMQP-Header-*` win); values may take
     * values from the request. Not `CC` or `BCC`: RabbitMQ takes those only as lists of routing keys,
     * and closes the channel every caller of the route publishes on for a string.
     */
    headers: v.optional(
      v.record(
        v.pipe(
          v.string(),
          v.minLength(1, "a header name must not be empty"),
          v.check(
            (name) => !isGatewayHeader(name),
            (issue) => `headers: ${String(issue.input)} is set by the gateway (delivery counts and delays), not by a route`,
          ),
          v.check(
            (name) => name !== "CC" && name !== "BCC",
            (issue) =>
              `headers: ${String(issue.input)} is RabbitMQ's sender-selected distribution header, which takes only a list of routing keys (a string closes the route's channel)`,
          ),
        ),
        v.string("each header value must be a string"),
        "headers must be a mapping",
      ),
    ),
    /** Publish with delivery mode 2, so the message outlives a broker restart in a durable queue (default true). */
    persistent: v.optional(v.boolean("persistent must be true or false"), true),
    /** Ask the broker to return a message no queue takes; the gateway then answers 422 (default false). */
    mandatory: v.optional(v.boolean("mandatory must be true or false"), false),
    /** Longest wait in milliseconds for the broker's confirm; then 504, outcome unknown (default 5000). */
    confirm_timeout_ms: v.optional(positiveInteger("confirm_timeout_ms"), 5000),
    /**
     * Publish each line of an `application/x-ndjson` body, or each element of a JSON array body, as
     * its own message, all confirmed before one 202 (default false: any body is one message).
     */
    batch: v.optional(v.boolean("batch must be true or false"), false),
    /** Most messages one batch request may carry, at most 10000; more is refused with 413 (default 1000). */
    max_batch: v.optional(v.pipe(positiveInteger("max_batch"), v.maxValue(10_000, "max_batch must be at most 10000")), 1000),
    /**
     * Seconds an `Idempotency-Key` is remembered: a repeated key within them is answered with the
     * first answer (plus `Idempotent-Replayed: true`) instead of publishing again (default 0: off; at most 86400).
     */
    dedupe_window_s: v.optional(
      v.pipe(
        v.number("dedupe_window_s must be a number"),
        v.integer("dedupe_window_s must be a whole number"),
        v.minValue(0, "dedupe_window_s must not be negative"),
        v.maxValue(MAX_DEDUPE_WINDOW_S, `dedupe_window_s must be at most ${MAX_DEDUPE_WINDOW_S} (24 h)`),
      ),
      0,
    ),
    /** Most keys one route object remembers; past it the oldest are forgotten first (default 10000, at most 100000). */
    dedupe_max_entries: v.optional(
      v.pipe(positiveInteger("dedupe_max_entries"), v.maxValue(100_000, "dedupe_max_entries must be at most 100000")),
      10_000,
    ),
    /** Request/reply: publish with direct reply-to and answer with the reply (default false). */
    reply: v.optional(v.boolean("reply must be true or false"), false),
    /** Longest wait in milliseconds for the reply, then 504; also how long an async reply is kept (default 10000, at most 60000). */
    reply_timeout_ms: v.optional(
      v.pipe(
        positiveInteger("reply_timeout_ms"),
        v.maxValue(MAX_REPLY_TIMEOUT_MS, `reply_timeout_ms must be at most ${MAX_REPLY_TIMEOUT_MS}`),
      ),
      10_000,
    ),
    /**
     * A JSON Schema (draft 2020-12, as an inline mapping) that every message body must match: a
     * body that is not JSON or does not match is a 400, and nothing is published.
     */
    schema: v.optional(v.record(v.string(), v.unknown(), "schema must be a JSON Schema written as a mapping")),
    /**
     * Let a publish carry `X-Delay: <ms>` (0 to 24 h): the message enters the exchange no sooner
     * than that, held meanwhile in the broker's delay queues (default false: `X-Delay` is a 400).
     */
    allow_delay: v.optional(v.boolean("allow_delay must be true or false"), false),
    /** Largest request body in bytes; a larger one is refused with 413 before it reaches the broker (default 1048576). */
    max_body_bytes: v.optional(
      v.pipe(
        positiveInteger("max_body_bytes"),
        v.maxValue(
          BROKER_MAX_MESSAGE_BYTES,
          `max_body_bytes must be at most ${BROKER_MAX_MESSAGE_BYTES} (the broker's default max_message_size)`,
        ),
      ),
      1024 * 1024,
    ),
  }),
  v.check(
    (producer) => !(producer.reply && producer.batch),
    "reply: true and batch: true exclude each other: one request waits for one reply",
  ),
  v.check(
    (producer) => !(producer.reply && producer.dedupe_window_s > 0),
    "reply: true and dedupe_window_s exclude each other: a replayed request would not get the service's reply again",
  ),
);

/** Longest long-poll, in seconds. */
export const MAX_WAIT_S = 20;

/** Most deliveries `max_deliveries` may allow. */
export const MAX_DELIVERIES = 1000;

/** Longest lease: 12 hours. */
export const MAX_LEASE_MS = 12 * 60 * 60 * 1000;

const ConsumerSchema = v.pipe(
  strictObject({
    /** Queue to take messages from. */
    queue: v.pipe(v.string("queue must be a string"), v.minLength(1, "queue must not be empty")),
    /** Let the broker consider a message delivered as soon as it is sent (default false). */
    auto_ack: v.optional(v.boolean("auto_ack must be true or false"), false),
    /**
     * `lease`: hand messages out unacknowledged, each with a lease id, until the client settles
     * them with `POST <path>/ack` or `/nack` or the lease runs out (then they are requeued).
     */
    ack: v.optional(v.picklist(["lease"], (issue) => `ack ${String(issue.input)} is not supported (use lease, or leave it out)`)),
    /** How long a lease lasts, in milliseconds (default 30000, at most 12 h). */
    lease_timeout_ms: v.optional(
      v.pipe(positiveInteger("lease_timeout_ms"), v.maxValue(MAX_LEASE_MS, `lease_timeout_ms must be at most ${MAX_LEASE_MS} (12 h)`)),
      30_000,
    ),
    /** Seconds a GET waits for a message when the queue is empty, 0 to 20 (default 0: answer 204 at once); `?wait=S` overrides. */
    wait_s: v.optional(
      v.pipe(
        v.number("wait_s must be a number"),
        v.minValue(0, "wait_s must not be negative"),
        v.maxValue(MAX_WAIT_S, `wait_s must be at most ${MAX_WAIT_S}`),
      ),
      0,
    ),
    /** Serve `GET` with `Accept: text/event-stream` as Server-Sent Events, one event per message (default false). */
    stream: v.optional(v.boolean("stream must be true or false"), false),
    /** Most messages one `GET ?max=N` may take, 1 to 100 (default 100). */
    max_messages: v.optional(v.pipe(positiveInteger("max_messages"), v.maxValue(100, "max_messages must be at most 100")), 100),
    /** Deliver the queue to a webhook instead of serving GETs (see README, "Push to a webhook"). */
    push: v.optional(PushSchema),
    /**
     * A message delivered this many times (1 to 1000) is not handed out again but rejected without
     * requeue, to its queue's dead-letter exchange (default: no limit).
     */
    max_deliveries: v.optional(
      v.pipe(positiveInteger("max_deliveries"), v.maxValue(MAX_DELIVERIES, `max_deliveries must be at most ${MAX_DELIVERIES}`)),
    ),
    /** The queue the route's dead letters land in, for `GET <path>/dead` and `POST <path>/redrive` (admin). */
    dead_letter_queue: v.optional(
      v.pipe(v.string("dead_letter_queue must be a string"), v.minLength(1, "dead_letter_queue must not be empty")),
    ),
  }),
  v.check((consumer) => !(consumer.auto_ack && consumer.ack === "lease"), "auto_ack: true and ack: lease exclude each other; choose one"),
  v.check(
    (consumer) => !(consumer.push && (consumer.auto_ack || consumer.ack === "lease" || consumer.stream)),
    "push acknowledges each message after the endpoint's 2xx: it excludes auto_ack, ack: lease and stream",
  ),
);

const AmqpSchema = strictObject({
  /** Whether this route is served by the AMQP backend (default false). */
  enabled: v.optional(v.boolean("enabled must be true or false"), false),
  /**
   * Broker URL: `amqp://` or `amqps://` (TCP), `ws://` or `wss://` (Web-AMQP endpoint; the vhost
   * is the `vhost` query parameter). Required when `enabled`. May contain `${NAME}`.
   */
  url: v.optional(
    v.pipe(
      v.string("url must be a string"),
      v.rawCheck(({ dataset, addIssue }) => {
        if (!dataset.typed) return;
        const problem = amqpUrlProblem(dataset.value);
        if (problem) addIssue({ message: problem });
      }),
    ),
  ),
  /** Publishing on POST and PUT. */
  producer: v.optional(ProducerSchema),
  /** Consuming on GET (and the other methods but POST, PUT, HEAD and OPTIONS). */
  consumer: v.optional(ConsumerSchema),
  /** AMQP heartbeat interval in seconds; 0 turns heartbeats off (default 30). */
  heartbeat_s: v.optional(
    v.pipe(
      v.number("heartbeat_s must be a number"),
      v.integer("heartbeat_s must be a whole number"),
      v.minValue(0, "heartbeat_s must not be negative"),
    ),
    30,
  ),
  /** Longest wait in milliseconds for a connection to the broker (default 5000). */
  connect_timeout_ms: v.optional(positiveInteger("connect_timeout_ms"), 5000),
  /**
   * How many Durable Objects (each with its own connections) share the route's traffic; one
   * object is single-threaded, so this is how a busy route scales out (default 1).
   */
  shards: v.optional(v.pipe(positiveInteger("shards"), v.maxValue(MAX_SHARDS, `shards must be at most ${MAX_SHARDS}`)), 1),
  /**
   * The requests a second the route is expected to serve at its busiest, for `npm run check` to
   * say whether `shards` are enough (one object serves about 1,000). Informative only.
   */
  expected_rps: v.optional(positiveInteger("expected_rps")),
  /** Where Cloudflare should place the route's objects, near the broker (e.g. `weur`); default: near the first request. */
  location_hint: v.optional(
    v.picklist(LOCATION_HINTS, (issue) => `location_hint ${String(issue.input)} is not one of ${LOCATION_HINTS.join(", ")}`),
  ),
  /** Longest wait in milliseconds for one broker operation other than a publish confirm (default 5000). */
  operation_timeout_ms: v.optional(positiveInteger("operation_timeout_ms"), 5000),
  /**
   * Seconds without a request after which the route's objects close their broker connections
   * (once nothing is held for a client), so that Cloudflare can evict them and bill nothing while
   * the route is idle; the next request connects again. `never`: stay connected (an alarm keeps
   * each object awake, billed all the time). Default 60.
   */
  idle_disconnect_s: v.optional(
    v.union(
      [
        v.pipe(
          positiveInteger("idle_disconnect_s"),
          v.maxValue(MAX_IDLE_DISCONNECT_S, `idle_disconnect_s must be at most ${MAX_IDLE_DISCONNECT_S}`),
        ),
        v.literal("never"),
      ],
      (issue) =>
        `idle_disconnect_s must be a whole number of seconds (1 to ${MAX_IDLE_DISCONNECT_S}) or "never", not ${JSON.stringify(issue.input)}`,
    ),
    DEFAULT_IDLE_DISCONNECT_S,
  ),
  /** Exchanges, queues and bindings the route needs, declared or verified once per connection. */
  topology: v.optional(TopologySchema),
});

const MethodSchema = v.pipe(
  v.string("each method must be a string"),
  v.toUpperCase(),
  v.check(
    (method) => method !== "HEAD" && method !== "OPTIONS",
    (issue) => `${String(issue.input)} cannot be routed: HEAD would discard a message and OPTIONS is answered by the gateway`,
  ),
  v.picklist(ROUTE_METHODS, (issue) => `unknown method ${String(issue.input)} (use ${ROUTE_METHODS.join(", ")})`),
);

const foreignHandlerEntries = Object.fromEntries(FOREIGN_HANDLERS.map((name) => [name, v.optional(v.unknown())])) as Record<
  (typeof FOREIGN_HANDLERS)[number],
  v.OptionalSchema<v.UnknownSchema, undefined>
>;

const RouteFields = strictObject({
  /** Unique name of the route; it keys the route's Durable Object and its `/amqp` stats. */
  id: v.pipe(v.string("id must be a string"), v.regex(/^[A-Za-z0-9._~-]+$/, "id must be letters, digits, '.', '_', '~' or '-'")),
  /** Request path; must start with `/`. Hono patterns such as `:name` are allowed. */
  path: v.pipe(
    v.string("path must be a string"),
    v.startsWith("/", "path must start with /"),
    v.check((path) => path.replace(/\/+$/, "") !== "/amqp", "/amqp is reserved for the gateway's stats"),
    v.check((path) => path.replace(/\/+$/, "") !== "/amqp/metrics", "/amqp/metrics is reserved for the gateway's Prometheus metrics"),
    v.check((path) => path.replace(/\/+$/, "") !== "/openapi.json", "/openapi.json is reserved for the gateway's OpenAPI document"),
    v.check(
      (path) => !["/healthz", "/readyz"].includes(path.replace(/\/+$/, "")),
      "/healthz and /readyz are reserved for the gateway's health checks",
    ),
  ),
  /** Also match every path below `path` (default false). */
  path_prefix: v.optional(v.boolean("path_prefix must be true or false"), false),
  /** Methods this route answers; by default every method its producer or consumer serves. */
  methods: v.optional(v.pipe(v.array(MethodSchema, "methods must be a list"), v.minLength(1, "methods must not be empty"))),
  /** The AMQP backend of the route. */
  amqp: v.optional(AmqpSchema),
  ...accessEntries,
  ...foreignHandlerEntries,
});

/** A validated route: its `methods` are resolved (every method it answers), and its backend is an {@link AmqpBackend}. */
export interface RouteConfig {
  id: string;
  path: string;
  path_prefix: boolean;
  /** Each method once; every one of them is served by the producer (POST, PUT) or the consumer (the others). */
  methods: RouteMethod[];
  amqp: AmqpBackend;
  /** The route's own, or the top-level default; none: every request from a web page is refused, its own origin's included. */
  cors?: CorsConfig;
  /** The route's own, or the top-level default, or `{ kind: "none" }`. */
  auth: AuthConfig;
  /** The route's own, or the top-level default. */
  rate_limit?: RateLimitConfig;
}

/** A route before the top-level defaults of `cors`, `auth` and `rate_limit` are applied. */
type RouteDraft = Omit<RouteConfig, "auth" | "cors" | "rate_limit"> & {
  auth?: AuthConfig;
  cors?: CorsConfig | "none";
  rate_limit?: RateLimitConfig | "none";
};

/**
 * The rules that relate a route's fields (enabled ⇒ url; a producer or a consumer; each method
 * served by one; no other innermost handler), checked together so that every broken rule is
 * reported, and the route turned into a {@link RouteConfig} that carries them.
 */
const RouteSchema = v.pipe(
  RouteFields,
  v.rawTransform(({ dataset, addIssue, NEVER }): RouteDraft => {
    const route = dataset.value;
    let broken = false;
    const problem = (message: string, key?: keyof typeof route) => {
      broken = true;
      const path = key === undefined ? undefined : ([{ type: "object", origin: "value", input: route, key, value: route[key] }] as const);
      addIssue(path ? { message, path: [...path] } : { message });
    };
    const foreign = FOREIGN_HANDLERS.filter((name) => route[name] !== undefined);
    if (!route.amqp?.enabled) {
      for (const name of foreign) problem(`${name} is not supported by this gateway (only amqp routes are)`, name);
      if (foreign.length === 0) problem("the route has no handler: set amqp.enabled: true with a url");
      return NEVER;
    }
    const { enabled, url, producer, consumer, topology, ...settings } = route.amqp;
    for (const name of foreign) problem(`${name} cannot be combined with amqp: both are innermost handlers`, name);
    if (url === undefined) problem("url is required when amqp.enabled is true", "amqp");
    const roles = producer ? { producer, ...(consumer ? { consumer } : {}) } : consumer ? { consumer } : undefined;
    if (!roles) problem("an enabled amqp route needs a producer, a consumer or both", "amqp");
    for (const method of route.methods ?? []) {
      if (isPublishMethod(method) && !producer) problem(`${method} publishes, but the route has no producer`, "methods");
      if (!isPublishMethod(method) && !consumer) problem(`${method} consumes, but the route has no consumer`, "methods");
      if (!isPublishMethod(method) && consumer?.push && method !== "GET") {
        problem(`${method}: a push route's consumer serves GET <path> (the push's state) only`, "methods");
      }
    }
    if (consumer?.push) {
      if (route.path_prefix || /[*?]/.test(route.path)) {
        problem(
          "consumer.push needs a path without *, optional parameters or path_prefix: its control is at <path>/pause and <path>/resume",
          "amqp",
        );
      }
      if (isTemplate(consumer.queue))
        problem("consumer.queue cannot take values from the request on a push route: it pushes one queue", "amqp");
    }
    if (consumer?.dead_letter_queue !== undefined) {
      if (route.path_prefix || /[*?]/.test(route.path)) {
        problem(
          "consumer.dead_letter_queue needs a path without *, optional parameters or path_prefix: its dead letters are at <path>/dead and <path>/redrive",
          "amqp",
        );
      }
      if (isTemplate(consumer.queue) || isTemplate(consumer.dead_letter_queue)) {
        problem("consumer.dead_letter_queue needs a consumer.queue and a dead_letter_queue that take no values from the request", "amqp");
      }
      if (consumer.dead_letter_queue === consumer.queue) problem("consumer.dead_letter_queue must not be the route's own queue", "amqp");
    }
    if (producer?.allow_delay && producer.reply) {
      problem("producer.allow_delay and reply exclude each other: a delayed request could not be answered in time", "amqp");
    }
    // The delay queues bind their last step to the route's exchange: one the request names could be
    // any exchange, internal ones included, which the broker would otherwise refuse to publish to.
    if (producer?.allow_delay && isTemplate(producer.exchange)) {
      problem("producer.allow_delay needs a producer.exchange that takes no values from the request", "amqp");
    }
    if (producer?.exchange.startsWith("runway.delay."))
      problem("producer.exchange: runway.delay.* are the gateway's delay exchanges", "amqp");
    // Values taken from the request must name what the request can have.
    const templated: Array<[string, string | undefined]> = [
      ["producer.exchange", producer?.exchange],
      ["producer.routing_key", producer?.routing_key],
      ["producer.message_id", producer?.message_id],
      ["producer.correlation_id", producer?.correlation_id],
      ["producer.type", producer?.type],
      ...Object.entries(producer?.headers ?? {}).map(([name, value]): [string, string] => [`producer.headers.${name}`, value]),
      ["consumer.queue", consumer?.queue],
    ];
    for (const [field, text] of templated) {
      const template = text === undefined ? undefined : templateProblem(text, route.path);
      if (template) problem(`${field}: ${template}`, "amqp");
    }
    if (producer?.reply) {
      if (route.path_prefix || /[*?]/.test(route.path)) {
        problem(
          "producer.reply needs a path without *, optional parameters or path_prefix: replies are fetched at <path>/replies/<id>",
          "amqp",
        );
      }
      // One reply channel serves all of a route object's requests: an exchange the broker refuses
      // (internal, missing, forbidden) closes it, and every other caller's pending reply with it.
      if (isTemplate(producer.exchange)) {
        problem(
          "producer.exchange cannot take values from the request on a reply route (a refused exchange would close the reply channel all its requests share)",
          "amqp",
        );
      }
    }
    if (broken || url === undefined || !roles) return NEVER;
    // A push route's consumer answers GET (its state) only; others consume on every method but POST and PUT.
    const methods =
      route.methods ??
      ROUTE_METHODS.filter((method) =>
        isPublishMethod(method) ? producer !== undefined : consumer !== undefined && (method === "GET" || !consumer.push),
      );
    return {
      id: route.id,
      path: route.path,
      path_prefix: route.path_prefix,
      methods: [...new Set(methods)],
      amqp: { ...settings, url, topology: topology ? [topology] : [], ...roles },
      ...(route.cors ? { cors: route.cors } : {}),
      ...(route.auth ? { auth: route.auth } : {}),
      ...(route.rate_limit ? { rate_limit: route.rate_limit } : {}),
    };
  }),
);

/** POST and PUT publish the body; every other routable method consumes a message. */
export const isPublishMethod = (method: string): boolean => method === "POST" || method === "PUT";

export const GatewayConfigSchema = v.pipe(
  strictObject({
    /** The routes, matched in order. */
    routes: v.pipe(v.array(RouteSchema, "routes must be a list"), v.minLength(1, "routes must list at least one route")),
    /** `GET /amqp`, the stats and status page. */
    admin: v.optional(AdminSchema, {}),
    /** Exchanges, queues and bindings applied on the broker of every route, before each route's own. */
    topology: v.optional(TopologySchema),
    /** RabbitMQ's management API dialect: `POST /api/exchanges/{vhost}/{exchange}/publish` and `POST /api/queues/{vhost}/{queue}/get` (off by default). */
    management_api: v.optional(ManagementApiSchema),
    ...accessEntries,
  }),
  // Every string of the file: a `${...}` that is not a reference would reach the broker as written.
  v.rawCheck(({ dataset, addIssue }) => {
    const visit = (value: unknown, path: v.IssuePathItem[]): void => {
      if (typeof value === "string") {
        const problem = badReferenceProblem(value);
        if (problem) addIssue({ message: problem, path: path as [v.IssuePathItem, ...v.IssuePathItem[]] });
      } else if (Array.isArray(value)) {
        value.forEach((item, key) => visit(item, [...path, { type: "array", origin: "value", input: value, key, value: item }]));
      } else if (value !== null && typeof value === "object") {
        for (const [key, item] of Object.entries(value)) {
          visit(item, [...path, { type: "object", origin: "value", input: value as Record<string, unknown>, key, value: item }]);
        }
      }
    };
    visit(dataset.value, []);
  }),
  // Runs even when a route has problems of its own, so that a duplicate id is reported with them.
  v.rawCheck(({ dataset, addIssue }) => {
    const list = (dataset.value as { routes?: unknown } | undefined)?.routes;
    if (!Array.isArray(list)) return;
    const routes = list as RouteDraft[];
    const seenIds = new Set<unknown>();
    routes.forEach((route: RouteDraft, index) => {
      const path = [
        { type: "object", origin: "value", input: dataset.value as Record<string, unknown>, key: "routes", value: routes },
        { type: "array", origin: "value", input: routes, key: index, value: route },
      ] as const;
      if (typeof route?.id === "string" && seenIds.has(route.id)) {
        addIssue({
          message: `duplicate id "${route.id}"`,
          path: [
            ...path,
            { type: "object", origin: "value", input: route as unknown as Record<string, unknown>, key: "id", value: route.id },
          ],
        });
      }
      seenIds.add(route?.id);
      if (!dataset.typed) return;
      // A push route's control paths are its own: another route there would never be reached.
      const push = route.amqp.consumer?.push ? route.path.replace(/\/+$/, "") : undefined;
      for (const other of push === undefined ? [] : routes) {
        if (other === route || (other.path !== `${push}/pause` && other.path !== `${push}/resume`)) continue;
        addIssue({ message: `route "${other.id}" is on ${other.path}, which is the push control of route "${route.id}"`, path: [...path] });
      }
      // Two routes on one path must split its methods between them, or one would never be reached.
      for (const earlier of routes.slice(0, index)) {
        if (earlier.path !== route.path || earlier.path_prefix !== route.path_prefix) continue;
        const shared = route.methods.filter((method) => earlier.methods.includes(method));
        if (shared.length > 0) {
          addIssue({
            message: `methods ${shared.join(", ")} on ${route.path} are already served by route "${earlier.id}"`,
            path: [...path],
          });
        }
      }
    });
  }),
  // The top-level cors, auth and rate_limit are the default of every route that has none.
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const { routes, admin, topology, management_api, ...defaults } = dataset.value;
    let broken = false;
    const served = routes.map((route, index): RouteConfig => {
      // A route's `none` drops the default.
      const corsSetting = route.cors ?? defaults.cors;
      const cors = corsSetting === "none" ? undefined : corsSetting;
      const rateSetting = route.rate_limit ?? defaults.rate_limit;
      const rateLimit = rateSetting === "none" ? undefined : rateSetting;
      const auth = route.auth ?? defaults.auth ?? { kind: "none" };
      const needed = rateLimit?.key === "api_key" ? "api_key" : rateLimit?.key === "jwt_sub" ? "bearer_jwt" : undefined;
      if (needed && auth.kind !== needed) {
        broken = true;
        addIssue({
          message: `rate_limit.key ${rateLimit?.key ?? ""} needs auth ${needed} on the route (it has ${auth.kind})`,
          path: [
            { type: "object", origin: "value", input: dataset.value as unknown as Record<string, unknown>, key: "routes", value: routes },
            { type: "array", origin: "value", input: routes, key: index, value: route },
            ...(route.rate_limit
              ? [
                  {
                    type: "object",
                    origin: "value",
                    input: route as unknown as Record<string, unknown>,
                    key: "rate_limit",
                    value: route.rate_limit,
                  } as const,
                ]
              : []),
          ],
        });
      }
      // The idempotency key picks a deduplicating route's shard; an exact per-caller limit needs the caller to.
      if (rateLimit && route.amqp.shards > 1 && (route.amqp.producer?.dedupe_window_s ?? 0) > 0) {
        broken = true;
        addIssue({
          message:
            "producer.dedupe_window_s with rate_limit needs shards: 1: the Idempotency-Key picks a shard, so a caller's requests would be counted on several",
          path: [
            { type: "object", origin: "value", input: dataset.value as unknown as Record<string, unknown>, key: "routes", value: routes },
            { type: "array", origin: "value", input: routes, key: index, value: route },
          ],
        });
      }
      const { cors: _cors, rate_limit: _rateLimit, ...rest } = route; // replaced by the resolved ones
      const amqp = topology ? { ...rest.amqp, topology: [topology, ...rest.amqp.topology] } : rest.amqp;
      return { ...rest, amqp, auth, ...(cors ? { cors } : {}), ...(rateLimit ? { rate_limit: rateLimit } : {}) };
    });
    const clash = management_api && routes.findIndex((route) => route.id === MANAGEMENT_API_ID);
    if (clash !== undefined && clash >= 0) {
      broken = true;
      addIssue({
        message: `route id "${MANAGEMENT_API_ID}" is the management API's own (management_api); give the route another id`,
        path: [
          { type: "object", origin: "value", input: dataset.value as unknown as Record<string, unknown>, key: "routes", value: routes },
          { type: "array", origin: "value", input: routes, key: clash, value: routes[clash] },
        ],
      });
    }
    return broken
      ? NEVER
      : {
          routes: served,
          admin,
          ...(defaults.cors && defaults.cors !== "none" ? { cors: defaults.cors } : {}),
          ...(management_api ? { management_api } : {}),
        };
  }),
);

/** The validated, normalised configuration the Worker runs on. */
export type GatewayConfig = v.InferOutput<typeof GatewayConfigSchema>;

/** A route that publishes (it has a producer), as the handlers of POST and PUT receive it. */
export type PublishingRoute = Publishing<RouteConfig>;
/** A route that consumes (it has a consumer), as the handlers of GET and the others receive it. */
export type ConsumingRoute = Consuming<RouteConfig>;
