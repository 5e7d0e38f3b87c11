import { isPublishMethod, type GatewayConfig, type RouteConfig } from "../config/schema";
import { parseTemplate } from "../config/templates";
import { consumes, publishes } from "../contract/route-settings";
import { MAX_PEEKED, MAX_REDRIVEN } from "../contract/route-calls";
import { ACK_MODES } from "../contract/management-api";

type Json = Record<string, unknown>;

const ERROR_STATUSES: Record<string, string> = {
  "400": "the request is invalid (a header, the body, its schema); nothing was done",
  "401": "missing or wrong credentials",
  "403": "refused (the route's cors or auth)",
  "404": "no such path, or the queue does not exist",
  "413": "the body is larger than the route takes",
  "422": "unroutable (a mandatory message no queue took), or an Idempotency-Key reused for other content",
  "429": "over the route's rate_limit; Retry-After says when to retry",
  "500": "the gateway failed",
  "502": "the broker refused the operation, or the route's settings",
  "503": "the broker is unreachable or the route busy; Retry-After says when to retry",
  "504": "the broker did not answer in time (a publish may or may not have been enqueued)",
};

const MESSAGE_HEADERS: Record<string, string> = {
  "X-Message-Id": "the message's message_id",
  "X-Correlation-Id": "its correlation_id",
  "X-Exchange": "the exchange it came through",
  "X-Routing-Key": "its routing key",
  "X-Redelivered": "whether it was delivered before",
  "X-Delivery-Count": "how many times it has been delivered, this time included",
  "X-Message-Count": "messages left in the queue",
  traceparent: "its W3C trace context",
};

/**
 * The OpenAPI 3.1 document of a routes file: each route's paths (path parameters, and the query
 * and header parameters its templates read), methods, request bodies (the route's
 * `producer.schema` where it has one), every answer the gateway gives with its status and headers,
 * the lease, reply, dead-letter and push paths a route adds, the gateway's own paths, and the
 * security schemes of each route's `auth` and of the admin token. Built from the configuration
 * alone: nothing secret (keys, URLs) is in it.
 */
export const openApiDocument = (config: GatewayConfig, serverUrl?: string): Json => {
  const paths: Record<string, Record<string, Json>> = {};
  const schemas: Json = { ...SCHEMAS };
  const securitySchemes: Json = {
    admin_token: { type: "http", scheme: "bearer", description: "ADMIN_TOKEN (or HTTP basic with it as the password)" },
  };
  const usedIds = new Set<string>();
  const add = (path: string, method: string, operation: Json) => {
    // Route ids that differ only in punctuation (`orders-v1`, `orders.v1`) must still give unique ids.
    let id = String(operation["operationId"]);
    for (let n = 2; usedIds.has(id); n++) id = `${String(operation["operationId"])}_${n}`;
    usedIds.add(id);
    (paths[path] ??= {})[method.toLowerCase()] = { ...operation, operationId: id };
  };
  const admin = [{ admin_token: [] }];

  add("/amqp", "GET", {
    operationId: "gateway_stats",
    summary: "Per-route counters",
    security: admin,
    responses: { "200": jsonAnswer("per-route counters", { type: "object" }), "401": errorAnswer("401") },
  });
  add("/amqp/metrics", "GET", {
    operationId: "gateway_metrics",
    summary: "The counters, gauges and histograms in Prometheus' text format",
    security: admin,
    responses: {
      "200": { description: "Prometheus text format 0.0.4", content: { "text/plain": { schema: { type: "string" } } } },
      "401": errorAnswer("401"),
    },
  });
  add("/healthz", "GET", {
    operationId: "gateway_health",
    summary: "The gateway answers",
    responses: { "200": jsonAnswer("alive", { type: "object" }) },
  });
  add("/readyz", "GET", {
    operationId: "gateway_ready",
    summary: "Every route's broker connections are up",
    responses: { "200": jsonAnswer("ready", { type: "object" }), "503": jsonAnswer("not ready", { type: "object" }) },
  });

  for (const route of config.routes) {
    const security = securityOf(route, securitySchemes);
    const path = openApiPath(route);
    const parameters = [...pathParametersOf(path), ...templateParameters(route)];
    for (const method of route.methods) {
      const operationId = `${method.toLowerCase()}_${safeId(route.id)}`;
      const common = { operationId, tags: [route.id], ...(parameters.length > 0 ? { parameters } : {}), ...(security ? { security } : {}) };
      const operation =
        isPublishMethod(method) && publishes(route)
          ? publishOperation(route, schemas)
          : consumes(route) && route.amqp.consumer.push
            ? { security: admin, ...pushState() }
            : consumes(route)
              ? consumeOperation(route)
              : undefined;
      if (!operation) continue;
      const own = (operation["parameters"] as Json[] | undefined) ?? [];
      const key = (parameter: Json) => `${String(parameter["in"])} ${String(parameter["name"]).toLowerCase()}`;
      const taken = new Set(own.map(key));
      const all = [...parameters.filter((parameter) => !taken.has(key(parameter))), ...own];
      add(path, method, { ...common, ...operation, ...(all.length > 0 ? { parameters: all } : {}) });
    }
    // The lease, reply, dead-letter and push paths hang off the route's own path (a prefix route's
    // too: `/files/ack`, not `/files/{rest}/ack`).
    const base = openApiPath({ ...route, path_prefix: false }).replace(/\/+$/, "");
    if (consumes(route) && route.amqp.consumer.ack === "lease") {
      for (const verb of ["ack", "nack", "extend"] as const) {
        add(`${base}/${verb}`, "POST", {
          operationId: `${verb}_${safeId(route.id)}`,
          tags: [route.id],
          ...(security ? { security } : {}),
          ...(pathParametersOf(base).length > 0 ? { parameters: pathParametersOf(base) } : {}),
          ...leaseOperation(verb),
        });
      }
    }
    if (publishes(route) && route.amqp.producer.reply) {
      add(`${base}/replies/{reply_id}`, "GET", {
        operationId: `reply_${safeId(route.id)}`,
        tags: [route.id],
        ...(security ? { security } : {}),
        parameters: [...pathParametersOf(base), { name: "reply_id", in: "path", required: true, schema: { type: "string" } }],
        responses: {
          "200": { description: "the reply", content: { "*/*": { schema: {} } } },
          "202": jsonAnswer("still pending", { type: "object" }),
          ...errors("404", "429", "503"),
        },
      });
    }
    if (consumes(route) && route.amqp.consumer.dead_letter_queue !== undefined) {
      add(`${base}/dead`, "GET", {
        operationId: `dead_${safeId(route.id)}`,
        tags: [route.id],
        security: admin,
        summary: "Peek at the route's dead letters (left where they are)",
        parameters: [{ name: "max", in: "query", schema: { type: "integer", minimum: 1, maximum: MAX_PEEKED, default: 10 } }],
        responses: {
          "200": jsonAnswer("the dead letters", { type: "object", properties: { messages: { type: "array", items: ref("Message") } } }),
          ...errors("400", "401", "403", "404", "503"),
        },
      });
      add(`${base}/redrive`, "POST", {
        operationId: `redrive_${safeId(route.id)}`,
        tags: [route.id],
        security: admin,
        summary: "Move dead letters back to the route's queue",
        requestBody: jsonBody({
          type: "object",
          required: ["max"],
          properties: { max: { type: "integer", minimum: 1, maximum: MAX_REDRIVEN } },
        }),
        responses: {
          "200": jsonAnswer("how many were moved", {
            type: "object",
            required: ["moved"],
            properties: { moved: { type: "integer" }, error: { type: "string" } },
          }),
          ...errors("400", "401", "403", "404", "503"),
        },
      });
    }
    if (consumes(route) && route.amqp.consumer.push) {
      for (const action of ["pause", "resume"] as const) {
        add(`${base}/${action}`, "POST", {
          operationId: `${action}_${safeId(route.id)}`,
          tags: [route.id],
          security: admin,
          ...pushState(),
        });
      }
    }
  }
  if (config.management_api) {
    const { exchanges, queues } = config.management_api;
    const security = securityOf(config.management_api, securitySchemes);
    const common = { tags: ["management_api"], ...(security ? { security } : {}) };
    const vhost = {
      name: "vhost",
      in: "path",
      required: true,
      description: "the broker URL's vhost, percent-encoded (`/` as `%2F`)",
      schema: { type: "string" },
    };
    const named = (name: string, listed: string[]) => ({ name, in: "path", required: true, schema: { type: "string", enum: listed } });
    add("/api/exchanges/{vhost}/{exchange}/publish", "POST", {
      ...common,
      operationId: "management_api_publish",
      summary: "Publish one message, mandatory, as RabbitMQ's management API does",
      parameters: [vhost, named("exchange", exchanges)],
      requestBody: jsonBody(ref("ManagementPublish")),
      responses: {
        "200": jsonAnswer("confirmed by the broker; routed: whether a queue took it", {
          type: "object",
          required: ["routed"],
          properties: { routed: { type: "boolean" } },
        }),
        ...managementErrors("400", "401", "403", "404", "413", "429", "502", "503", "504"),
      },
    });
    add("/api/queues/{vhost}/{queue}/get", "POST", {
      ...common,
      operationId: "management_api_get",
      summary: "Take messages as RabbitMQ's management API does",
      parameters: [vhost, named("queue", queues)],
      requestBody: jsonBody(ref("ManagementGet")),
      responses: {
        "200": jsonAnswer("the messages taken, in queue order", { type: "array", items: ref("ManagementMessage") }),
        ...managementErrors("400", "401", "403", "404", "429", "502", "503", "504"),
      },
    });
    Object.assign(schemas, MANAGEMENT_SCHEMAS);
  }
  return {
    openapi: "3.1.0",
    info: { title: "runway", version: "1", description: "The routes of this gateway's routes.yaml: HTTP to AMQP (RabbitMQ)." },
    jsonSchemaDialect: "https://spec.openapis.org/oas/3.1/dialect/base",
    ...(serverUrl ? { servers: [{ url: serverUrl }] } : {}),
    paths,
    components: { schemas, securitySchemes },
  };
};

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });

/** The management API's errors, in the broker's shape. */
const managementErrors = (...statuses: string[]): Json =>
  Object.fromEntries(statuses.map((status) => [status, jsonAnswer(ERROR_STATUSES[status] ?? "error", ref("ManagementError"))]));

const MANAGEMENT_SCHEMAS: Json = {
  ManagementPublish: {
    type: "object",
    required: ["routing_key", "payload"],
    properties: {
      routing_key: { type: "string", maxLength: 255 },
      payload: { type: "string" },
      payload_encoding: { enum: ["string", "base64"], default: "string" },
      properties: {
        type: "object",
        description: "AMQP basic properties by the broker's names (content_type, delivery_mode, headers, ...)",
      },
    },
  },
  ManagementGet: {
    type: "object",
    required: ["ackmode"],
    properties: {
      count: { type: ["integer", "string"], description: "1 to 1000 (default 1); rabbitmqadmin sends it as a string" },
      ackmode: { enum: [...ACK_MODES] },
      encoding: { enum: ["auto", "base64"], default: "auto" },
      truncate: { type: ["integer", "string"] },
    },
  },
  ManagementMessage: {
    type: "object",
    required: ["payload_bytes", "redelivered", "exchange", "routing_key", "message_count", "properties", "payload", "payload_encoding"],
    properties: {
      payload_bytes: { type: "integer" },
      redelivered: { type: "boolean" },
      exchange: { type: "string" },
      routing_key: { type: "string" },
      message_count: { type: "integer" },
      properties: { type: ["object", "array"], description: "the message's properties; [] when it has none" },
      payload: { type: "string" },
      payload_encoding: { enum: ["string", "base64"] },
    },
  },
  ManagementError: {
    type: "object",
    required: ["error", "reason"],
    properties: { error: { type: "string" }, reason: { type: "string" }, route: { type: "string" } },
  },
};
const jsonAnswer = (description: string, schema: Json, headers?: Json): Json => ({
  description,
  ...(headers ? { headers } : {}),
  content: { "application/json": { schema } },
});
const jsonBody = (schema: Json): Json => ({ required: true, content: { "application/json": { schema } } });
const errorAnswer = (status: string): Json => ({
  description: ERROR_STATUSES[status] ?? "an error",
  ...(status === "429" || status === "503" ? { headers: { "Retry-After": { schema: { type: "integer" }, description: "seconds" } } } : {}),
  content: { "application/json": { schema: ref("Error") } },
});
const errors = (...statuses: string[]): Json => Object.fromEntries(statuses.map((status) => [status, errorAnswer(status)]));
const header = (name: string, description: string, schema: Json = { type: "string" }): Json => ({
  name,
  in: "header",
  description,
  schema,
});
const safeId = (id: string): string => id.replace(/[^A-Za-z0-9_]/g, "_");

/**
 * The route's Hono path as OpenAPI writes it: `:name` (with any pattern, `{[0-9]{3}}` included) as
 * `{name}`, each `*` as `{rest}` (`{rest2}`, ... after the first), and a prefix route's rest as `{rest}`.
 */
const openApiPath = (route: RouteConfig): string => {
  let out = "";
  let stars = 0;
  const { path } = route;
  for (let i = 0; i < path.length; i++) {
    const char = path[i];
    if (char === "*") {
      stars++;
      out += stars === 1 ? "{rest}" : `{rest${stars}}`;
      continue;
    }
    if (char !== ":") {
      out += char;
      continue;
    }
    const name = /^[A-Za-z0-9_]+/.exec(path.slice(i + 1))?.[0] ?? "";
    i += name.length;
    // A pattern after the name, braces nested: skipped.
    if (path[i + 1] === "{") {
      let depth = 0;
      for (i = i + 1; i < path.length; i++) {
        if (path[i] === "{") depth++;
        else if (path[i] === "}" && --depth === 0) break;
      }
    }
    if (path[i + 1] === "?") i++;
    out += `{${name}}`;
  }
  if (route.path_prefix) out = `${out.replace(/\/+$/, "")}/{rest}`;
  return out;
};

/** `schema` with each local `$ref` (`#...`) rewritten to start at `base`, where the schema now lies. */
const rebased = (schema: unknown, base: string): Json => {
  const walk = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(walk);
    if (value === null || typeof value !== "object") return value;
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [
        key,
        key === "$ref" && typeof item === "string" && item.startsWith("#") ? `${base}${item.slice(1)}` : walk(item),
      ]),
    );
  };
  return walk(schema) as Json;
};

const pathParametersOf = (path: string): Json[] =>
  [...path.matchAll(/\{([A-Za-z0-9_]+)\}/g)].map((match) => ({ name: match[1], in: "path", required: true, schema: { type: "string" } }));

/** The query parameters and headers the route's templates read (`{query.name}`, `{header.name}`): required, as a request without one is a 400. */
const templateParameters = (route: RouteConfig): Json[] => {
  const { producer, consumer } = route.amqp;
  const texts = [
    producer?.exchange,
    producer?.routing_key,
    producer?.message_id,
    producer?.correlation_id,
    producer?.type,
    ...Object.values(producer?.headers ?? {}),
    consumer?.queue,
  ];
  const found = new Map<string, Json>();
  for (const text of texts) {
    if (text === undefined) continue;
    const parsed = parseTemplate(text);
    if (!("parts" in parsed)) continue;
    for (const part of parsed.parts) {
      if (part.kind !== "query" && part.kind !== "header") continue;
      found.set(`${part.kind} ${part.name}`, {
        name: part.name,
        in: part.kind,
        required: true,
        schema: { type: "string" },
        description: "read by the route's templates",
      });
    }
  }
  return [...found.values()];
};

/** The route's `auth` as a security scheme of its own (and its requirement), or undefined for none. */
const securityOf = (route: Pick<RouteConfig, "id" | "auth">, schemes: Json): Array<Record<string, string[]>> | undefined => {
  const auth = route.auth;
  if (auth.kind === "none") return undefined;
  const name = `${safeId(route.id)}_${auth.kind}`;
  if (auth.kind === "api_key")
    schemes[name] = {
      type: "apiKey",
      in: "query" in auth && auth.query ? "query" : "header",
      name: ("query" in auth && auth.query) || ("header" in auth ? auth.header : "X-API-Key"),
    };
  else if (auth.kind === "bearer_jwt") schemes[name] = { type: "http", scheme: "bearer", bearerFormat: "JWT" };
  else schemes[name] = { type: "http", scheme: "basic" };
  return [{ [name]: [] }];
};

const publishOperation = (
  route: RouteConfig & { amqp: { producer: NonNullable<RouteConfig["amqp"]["producer"]> } },
  schemas: Json,
): Json => {
  const producer = route.amqp.producer;
  let body: Json = {};
  if (producer.schema) {
    // In the document's components, its own references (`#/$defs/item`) made to point there.
    const name = `${safeId(route.id)}_body`;
    schemas[name] = rebased(producer.schema, `#/components/schemas/${name}`);
    body = ref(name);
  }
  const content: Json = producer.batch
    ? {
        "application/json": { schema: { oneOf: [body, { type: "array", items: body }] } },
        "application/x-ndjson": { schema: { type: "string", description: "one message per line" } },
      }
    : producer.schema
      ? { "application/json": { schema: body } }
      : { "*/*": { schema: {} } };
  const parameters = [
    header(
      "Idempotency-Key",
      producer.dedupe_window_s > 0 ? "the message_id; a repeat within the window is answered as the first" : "the message_id",
    ),
    header("X-Correlation-Id", "correlation_id"),
    header("X-Reply-To", "reply_to"),
    header("X-Type", "type"),
    header("X-Priority", "priority, 0 to 9", { type: "integer", minimum: 0, maximum: 9 }),
    header("X-Expiration", "per-message TTL in milliseconds", { type: "integer", minimum: 0 }),
    header("traceparent", "W3C trace context, stored in the message's headers table"),
    header("tracestate", "W3C trace state"),
    ...(producer.allow_delay
      ? [
          header("X-Delay", "milliseconds before the message enters the exchange, 0 to 86400000", {
            type: "integer",
            minimum: 0,
            maximum: 86_400_000,
          }),
        ]
      : []),
  ];
  const published: Json = producer.reply
    ? {
        "200": { description: "the reply", content: { "*/*": { schema: {} } } },
        "202": jsonAnswer(
          "with Prefer: respond-async, the request is published; fetch the reply at Location",
          { type: "object" },
          { Location: { schema: { type: "string" } } },
        ),
      }
    : { "202": jsonAnswer("confirmed by the broker", ref("Published")) };
  return {
    summary: `Publish to ${producer.exchange === "" ? "the default exchange" : `exchange ${producer.exchange}`} with routing key ${producer.routing_key}`,
    description:
      "Headers X-AMQP-Header-<name> become entries of the message's headers table; a CloudEvent (ce-* headers, or application/cloudevents+json) is published per the CloudEvents AMQP binding.",
    parameters,
    requestBody: { required: true, content },
    responses: { ...published, ...errors("400", "401", "403", "413", "422", "429", "502", "503", "504") },
  };
};

const consumeOperation = (route: RouteConfig & { amqp: { consumer: NonNullable<RouteConfig["amqp"]["consumer"]> } }): Json => {
  const consumer = route.amqp.consumer;
  const lease = consumer.ack === "lease";
  const headers: Json = Object.fromEntries(
    Object.entries(MESSAGE_HEADERS).map(([name, description]) => [name, { description, schema: { type: "string" } }]),
  );
  if (lease) headers["X-Lease-Id"] = { description: "settle it with POST <path>/ack, /nack or /extend", schema: { type: "string" } };
  const one: Json = { schema: {} };
  return {
    summary: `Take messages from queue ${consumer.queue}${lease ? " on a lease" : ""}`,
    parameters: [
      {
        name: "max",
        in: "query",
        description: "up to this many messages, as JSON",
        schema: { type: "integer", minimum: 1, maximum: consumer.max_messages },
      },
      {
        name: "wait",
        in: "query",
        description: "seconds to wait for the first message (long-poll)",
        schema: { type: "number", minimum: 0, maximum: 20 },
      },
      ...(consumer.stream
        ? [
            {
              name: "envelope",
              in: "query",
              description: "json: each event's data is the message as a batch shows it",
              schema: { enum: ["json"] },
            },
          ]
        : []),
    ],
    responses: {
      "200": {
        description:
          "one message (its body and content type, its properties as headers), or with ?max a batch as JSON" +
          (consumer.stream ? ", or with Accept: text/event-stream a stream of events" : ""),
        headers,
        content: {
          "*/*": one,
          "application/json": { schema: { oneOf: [{}, ref("Batch")] } },
          ...(consumer.stream ? { "text/event-stream": { schema: { type: "string" } } } : {}),
        },
      },
      "204": { description: "the queue is empty (or the wait ran out)" },
      ...errors("400", "401", "403", "404", "429", "502", "503", "504"),
    },
  };
};

const leaseOperation = (verb: "ack" | "nack" | "extend"): Json => {
  const properties: Json = { lease_ids: { type: "array", items: { type: "string" }, minItems: 1, maxItems: 1000 } };
  if (verb === "nack")
    Object.assign(properties, { requeue: { type: "boolean", default: true }, delay_s: { type: "integer", minimum: 0, maximum: 43200 } });
  if (verb === "extend") properties["lease_timeout_ms"] = { type: "integer", minimum: 1, maximum: 43_200_000 };
  const results = ref("LeaseResults");
  return {
    summary: { ack: "Acknowledge leased messages", nack: "Put leased messages back (or dead-letter them)", extend: "Extend leases" }[verb],
    requestBody: jsonBody({ type: "object", required: verb === "extend" ? ["lease_ids", "lease_timeout_ms"] : ["lease_ids"], properties }),
    responses: {
      "200": jsonAnswer("every id settled", results),
      "207": jsonAnswer("the ids fared differently", results),
      "404": jsonAnswer("unknown ids", results),
      "409": jsonAnswer("settled before", results),
      "410": jsonAnswer("back in the queue already", results),
      ...errors("400", "401", "403", "413", "429", "503"),
    },
  };
};

const pushState = (): Json => ({
  summary: "A push route's state (and control)",
  responses: { "200": jsonAnswer("the push's state", { type: "object" }), ...errors("401", "403", "405", "503") },
});

const SCHEMAS: Json = {
  Error: { type: "object", required: ["error", "route"], properties: { error: { type: "string" }, route: { type: ["string", "null"] } } },
  Published: {
    type: "object",
    required: ["status", "exchange", "routing_key"],
    properties: {
      status: { const: "published" },
      exchange: { type: "string" },
      routing_key: { type: "string" },
      count: { type: "integer", description: "messages of a batch" },
      deliver_after: { type: "string", format: "date-time", description: "with X-Delay: when the message is due" },
    },
  },
  Message: {
    type: "object",
    required: ["body", "body_encoding", "properties", "exchange", "routing_key", "redelivered", "delivery_count"],
    properties: {
      body: { type: "string" },
      body_encoding: { enum: ["utf8", "base64"] },
      properties: { type: "object" },
      exchange: { type: "string" },
      routing_key: { type: "string" },
      redelivered: { type: "boolean" },
      delivery_count: { type: "integer", minimum: 1 },
      lease_id: { type: "string" },
    },
  },
  Batch: {
    type: "object",
    required: ["messages"],
    properties: { messages: { type: "array", items: { $ref: "#/components/schemas/Message" } }, remaining: { type: ["integer", "null"] } },
  },
  LeaseResults: {
    type: "object",
    required: ["results"],
    properties: {
      results: {
        type: "array",
        items: {
          type: "object",
          required: ["lease_id", "status", "outcome"],
          properties: {
            lease_id: { type: "string" },
            status: { type: "integer" },
            outcome: { type: "string" },
            expires_at: { type: "string", format: "date-time" },
            returns_at: { type: "string", format: "date-time" },
            error: { type: "string" },
          },
        },
      },
    },
  },
};
