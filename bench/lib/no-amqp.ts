/**
 * What a route answers on the bench's no-AMQP routes ({@link NO_AMQP_ROUTES}), in every runtime: a
 * publish "confirmed" at once, a GET with a canned message of the route's size. Shared by the
 * bench Worker's object (bench/bench-worker.ts) and the Node and Deno servers' routes
 * (bench/self-hosted-bench.ts). Types only from the gateway: the Worker bundles this file.
 */
import type { ConsumeOutcome, PublishManyOutcome, PublishManyRequest } from "../../src/contract/route-calls";
import type { ConsumedMessage } from "../../src/contract/messages";
import { NO_AMQP_ROUTES, payloadOf } from "./worker-paths";
import type { ConsumingTarget } from "../../src/contract/route-settings";

/** Every message of `request` as if the broker had confirmed it. */
export const acceptWithoutPublishing = (request: PublishManyRequest): PublishManyOutcome => ({
  outcomes: request.messages.map(() => ({ ok: true })),
});

/** The no-AMQP answer of a publish to `routeId`, or undefined for a route that publishes for real. */
export const noAmqpPublish = (request: PublishManyRequest): PublishManyOutcome | undefined =>
  request.route.id === NO_AMQP_ROUTES.publish ? acceptWithoutPublishing(request) : undefined;

/** The no-AMQP answer of a GET of `route`, or undefined for a route that consumes for real. */
export const noAmqpConsume = (route: ConsumingTarget): ConsumeOutcome | undefined => {
  const body = CANNED_BODIES.get(route.id);
  return body ? { ok: true, messages: [{ message: cannedMessage(route, body) }] } : undefined;
};

const encoder = new TextEncoder();
const CANNED_BODIES = new Map<string, Uint8Array>([
  [NO_AMQP_ROUTES.consume, encoder.encode(payloadOf(250))],
  [NO_AMQP_ROUTES.consumeLarge, encoder.encode(payloadOf(16 * 1024))],
]);

/** A message as a consume of the bench's queues would take it. */
const cannedMessage = (route: ConsumingTarget, body: Uint8Array): ConsumedMessage => ({
  body: body.slice().buffer,
  contentType: "application/json",
  contentEncoding: undefined,
  messageId: undefined,
  correlationId: undefined,
  replyTo: undefined,
  type: undefined,
  priority: undefined,
  expiration: undefined,
  timestamp: undefined,
  appId: undefined,
  headers: undefined,
  exchange: "",
  routingKey: route.amqp.consumer.queue,
  redelivered: false,
  deliveryCount: 1,
  messageCount: 1000,
});
