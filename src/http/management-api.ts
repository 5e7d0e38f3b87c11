import type { Context, Hono, MiddlewareHandler } from "hono";
import type { GatewayEnv } from "../env";
import { authenticate } from "./access/authenticate";
import { corsPolicy } from "./access/cors-policy";
import { admissionFor } from "./access/admission";
import { failureError, GatewayError } from "./gateway-error";
import { routeClient } from "./route-client";
import { requestBody } from "./request-body";
import { holdAnswerRoom, learnAnswer } from "./request-memory";
import { managementProperties, wellFormed } from "./management-properties";
import { isDirectReplyTo } from "./message-properties";
import { fromBase64 } from "../base64";
import { utf8Length, SHORT_STRING_BYTES } from "../contract/frame-limits";
import { brokerUser, brokerVhost } from "../contract/broker-address";
import { ACK_MODES, DEFAULT_EXCHANGE_NAME, MAX_GET_COUNT, type AckMode } from "../contract/management-api";
import { NEGATIVE_CONFIRM, type RouteFailure } from "../contract/failures";
import { MANAGEMENT_API_ID, type ManagementApiConfig } from "../config/management-api-schema";

/** What the errors of these endpoints name as their route: the management API's object's name. */
const LABEL = MANAGEMENT_API_ID;

/** A get's answer holds each body again as JSON text (base64 a third larger, escapes more). */
const JSON_EXPANSION = 3;

/**
 * RabbitMQ's management API dialect (`management_api` in routes.yaml), for the scripts and tools
 * written against the broker's HTTP API (`rabbitmqadmin publish`, `rabbitmqadmin get`):
 *
 * - `POST /api/exchanges/{vhost}/{exchange}/publish` with `{"routing_key", "payload",
 *   "payload_encoding", "properties"}` publishes one message, mandatory, and answers
 *   `{"routed": true|false}` once the broker has confirmed it (false: returned, no queue took it).
 * - `POST /api/queues/{vhost}/{queue}/get` with `{"count", "ackmode", "encoding", "truncate"}`
 *   answers the broker's array of messages (`payload_bytes`, `redelivered`, `exchange`,
 *   `routing_key`, `message_count`, `properties`, `payload`, `payload_encoding`).
 *
 * Behind the block's `auth` (and `rate_limit`); only its vhost (the URL's), its `exchanges` and its
 * `queues` are served, anything else is 403. Errors are the broker's shape, `{"error": <kind>,
 * "reason": <why>}` (rabbitmqadmin prints the reason), with the gateway's `route`.
 */
export const mountManagementApi = (app: Hono<GatewayEnv>, management: ManagementApiConfig): void => {
  const vhost = brokerVhost(management.amqp.url);
  const user = brokerUser(management.amqp.url);
  const exchanges = new Set(management.exchanges);
  const queues = new Set(management.queues);
  const auth = authenticate(management) as MiddlewareHandler<GatewayEnv>;
  // No cors: a web page's request is refused (a browser that holds the operator's basic
  // credentials would otherwise send them with a page's cross-site POST).
  const noPages = corsPolicy(undefined, ["POST"], LABEL);
  const named: MiddlewareHandler<GatewayEnv> = async (c, next) => {
    c.set("routeId", LABEL);
    await next();
    if (c.error instanceof GatewayError) c.res = brokerShaped(c.error, c.res.headers);
  };
  /**
   * The first checks after `auth`: the URL's vhost, and a name (`param`) of the block's list;
   * 403 otherwise, saying what was asked (cut short: it is the caller's text).
   */
  const permitted =
    (param: "exchange" | "queue", listed: ReadonlySet<string>, doing: string): MiddlewareHandler<GatewayEnv> =>
    (c, next) => {
      const asked = c.req.param("vhost") ?? "";
      if (asked !== vhost) {
        throw new GatewayError(
          403,
          `vhost "${asked.slice(0, 100)}" is not served here (the gateway's management API serves "${vhost}")`,
          LABEL,
        );
      }
      const name = c.req.param(param) ?? "";
      if (!listed.has(name)) throw new GatewayError(403, `${doing} ${param} "${name.slice(0, 255)}" is not permitted here`, LABEL);
      return next();
    };
  const client = (c: Context<GatewayEnv>) => routeClient(c.env, management, 0);

  const publishPath = "/api/exchanges/:vhost/:exchange/publish";
  app.post(
    publishPath,
    named,
    noPages,
    auth,
    permitted("exchange", exchanges, "publishing to"),
    ...requestBody({
      routeId: LABEL,
      route: management,
      maxBytes: management.max_body_bytes,
      tooLarge: `the body is larger than ${management.max_body_bytes} bytes (management_api.max_body_bytes); nothing was published`,
      nothing: "published",
      // The decoded payload is a second copy.
      expansion: 2,
    }),
    async (c) => {
      const exchangeName = c.req.param("exchange") ?? "";
      const body = jsonBody(await c.req.text());
      const routingKey = body.routing_key;
      if (typeof routingKey !== "string") throw badRequest("routing_key must be a string");
      if (utf8Length(routingKey) > SHORT_STRING_BYTES) throw badRequest(`routing_key must be at most ${SHORT_STRING_BYTES} bytes`);
      // Through the default exchange such a key addresses a direct reply-to consumer; a crafted one
      // makes RabbitMQ 3.10 close the connection every caller's publishes share (INTERNAL_ERROR).
      if (isDirectReplyTo(routingKey)) throw badRequest("routing_key names RabbitMQ's direct reply-to");
      const properties = managementProperties(body.properties ?? {}, user, LABEL);
      const payload = decodePayload(body.payload, body.payload_encoding ?? "string");
      const admission = admissionFor(c, management);
      const outcome = await client(c).call("publish", (object) =>
        object.managementPublish({
          target: management,
          exchange: exchangeName === DEFAULT_EXCHANGE_NAME ? "" : exchangeName,
          routingKey: wellFormed(routingKey),
          body: payload,
          properties,
          ...(admission ? { admission } : {}),
        }),
      );
      if (!outcome.ok) throw brokerFailure(outcome);
      return c.json({ routed: outcome.routed });
    },
  );

  const getPath = "/api/queues/:vhost/:queue/get";
  app.post(
    getPath,
    named,
    noPages,
    auth,
    permitted("queue", queues, "reading"),
    ...requestBody({
      routeId: LABEL,
      route: management,
      maxBytes: 4096,
      tooLarge: "the body is larger than 4096 bytes; nothing was taken",
      nothing: "taken",
    }),
    async (c) => {
      const body = jsonBody(await c.req.text());
      const count = wholeNumber(body.count ?? 1, "count", MAX_GET_COUNT);
      const ackmode = body.ackmode;
      if (!(ACK_MODES as readonly unknown[]).includes(ackmode)) throw badRequest(`ackmode must be one of ${ACK_MODES.join(", ")}`);
      const encoding = body.encoding ?? "auto";
      if (encoding !== "auto" && encoding !== "base64") throw badRequest("Unsupported encoding. Please use auto or base64.");
      const truncate = body.truncate === undefined || body.truncate === null ? undefined : wholeNumber(body.truncate, "truncate");
      const admission = admissionFor(c, management);
      const queue = c.req.param("queue") ?? "";
      // Room for the answer as the queue's answers have lately been sized (as a route's GET plans it).
      const source = { id: LABEL, amqp: { consumer: { queue } } };
      const held = await holdAnswerRoom(source, Math.max(1, count), JSON_EXPANSION, admission?.key, "nothing was taken");
      try {
        const outcome = await client(c).call("consume", (object) =>
          object.managementGet({
            target: management,
            queue,
            count,
            ackmode: ackmode as AckMode,
            encoding,
            ...(truncate === undefined ? {} : { truncate }),
            maxBytes: Math.floor(held.bytes / JSON_EXPANSION),
            ...(admission ? { admission } : {}),
          }),
        );
        if (!outcome.ok) throw brokerFailure(outcome);
        learnAnswer(
          source,
          outcome.messages.map((message) => message.payload_bytes),
        );
        // As the broker's encoder writes them: U+2028 and U+2029 escaped (JavaScript in a page reads them as line ends).
        const text = JSON.stringify(outcome.messages)
          .replace(/\u2028/g, "\\u2028")
          .replace(/\u2029/g, "\\u2029");
        held.resize(text.length);
        return c.body(text, 200, { "Content-Type": "application/json" });
      } finally {
        held.release();
      }
    },
  );

  for (const path of [publishPath, getPath]) {
    app.on(["GET", "PUT", "DELETE", "PATCH", "HEAD"], path, named, () => {
      throw new GatewayError(405, "only POST is served here", LABEL, { Allow: "POST" });
    });
  }
};

/** The broker's error shape: a short kind and the reason (rabbitmqadmin prints `reason` of a 400), with the route. */
const brokerShaped = (error: GatewayError, headers: Headers): Response => {
  const kind = ERROR_KINDS[error.status] ?? (error.status >= 500 ? "internal_error" : "bad_request");
  const sent = new Headers(headers);
  sent.set("Content-Type", "application/json");
  sent.delete("Content-Length");
  return new Response(JSON.stringify({ error: kind, reason: error.message, route: LABEL }), { status: error.status, headers: sent });
};

const ERROR_KINDS: Record<number, string> = {
  400: "bad_request",
  401: "not_authorized",
  403: "access_refused",
  404: "not_found",
  405: "method_not_allowed",
  413: "payload_too_large",
  422: "unprocessable",
  429: "too_many_requests",
  502: "broker_error",
  503: "unavailable",
  504: "timeout",
};

/**
 * A route object's failure as an answer. A refusal the broker gave by closing the channel (an
 * exchange that does not exist, an internal one) is the broker's API's 400, its reason the reply
 * code and text (`404 NOT_FOUND - no exchange ...`), which rabbitmqadmin prints as it does for the
 * broker.
 */
const brokerFailure = (failure: RouteFailure): GatewayError => {
  const refusal = failure.kind === "broker_error" ? /\b([A-Z_]+) - ([\s\S]*)$/.exec(failure.message) : null;
  const code = refusal ? REPLY_CODES[refusal[1] ?? ""] : undefined;
  // A negative confirm (a queue's reject-publish overflow): the broker's API's own words.
  if (failure.kind === "broker_error" && failure.message.includes(NEGATIVE_CONFIRM)) {
    return new GatewayError(400, "rejected Unable to publish message. Check queue limits.", LABEL);
  }
  // The text without the code the gateway's own reason adds at its end (" (404)").
  const text = (refusal?.[2] ?? "").replace(/ \(\d{3}\)$/, "");
  if (refusal && code !== undefined) return new GatewayError(400, `${code} ${refusal[1] ?? ""} - ${text}`, LABEL);
  return failureError(failure, LABEL);
};

/** AMQP 0-9-1's reply codes, by the names RabbitMQ gives them in a close's text. */
const REPLY_CODES: Record<string, number> = {
  ACCESS_REFUSED: 403,
  NOT_FOUND: 404,
  RESOURCE_LOCKED: 405,
  PRECONDITION_FAILED: 406,
};

const badRequest = (reason: string) => new GatewayError(400, reason, LABEL);

/** The request's body as a JSON object, or a 400. */
const jsonBody = (text: string): Record<string, unknown> => {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw badRequest("the body must be JSON (not_json)");
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw badRequest("the body must be a JSON object");
  return body as Record<string, unknown>;
};

/** A whole number, or a string of digits as rabbitmqadmin sends them (`count=5` arrives as "5"), up to `max`. */
const wholeNumber = (value: unknown, name: string, max = Number.MAX_SAFE_INTEGER): number => {
  const number = typeof value === "string" && /^[0-9]{1,16}$/.test(value) ? Number(value) : value;
  if (typeof number !== "number" || !Number.isSafeInteger(number) || number < 0) throw badRequest(`${name} must be a whole number`);
  if (number > max) throw badRequest(`${name} must be at most ${max}`);
  return number;
};

/** The payload's bytes: the string as UTF-8, or base64 decoded strictly. */
const decodePayload = (payload: unknown, encoding: unknown): ArrayBuffer => {
  if (typeof payload !== "string") throw badRequest("payload must be a string (payload_not_string)");
  if (encoding === "string") return new TextEncoder().encode(payload).buffer as ArrayBuffer;
  if (encoding !== "base64") throw badRequest('payload_encoding must be "string" or "base64"');
  const bytes = fromBase64(payload);
  if (!bytes) throw badRequest("payload is not valid base64");
  return bytes.buffer as ArrayBuffer;
};
