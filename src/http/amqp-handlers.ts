import type { Context } from "hono";
import type { ConsumeOutcome, PublishOutcome, RouteTarget } from "../amqp/route-messages";
import type { GatewayEnv } from "../env";
import { failureError, GatewayError, RETRY_AFTER_SECONDS } from "./gateway-error";
import { routeObject } from "./route-target";

/** Content type of a message published without one, and of a message consumed without one (the seed's default). */
export const DEFAULT_CONTENT_TYPE = "application/json";

/**
 * POST/PUT: publishes the body, byte for byte, and answers 202 only once the broker confirmed it.
 */
export const publish = async (c: Context<GatewayEnv>, target: RouteTarget): Promise<Response> => {
  const body = await c.req.arrayBuffer();
  const outcome = await callRouteObject(target.id, async (): Promise<PublishOutcome> =>
    routeObject(c.env, target.id).publish({
      route: target,
      body,
      properties: { contentType: c.req.header("content-type") ?? DEFAULT_CONTENT_TYPE },
    }),
  );
  if (!outcome.ok) throw failureError(outcome.kind, outcome.message, target.id);
  const producer = target.amqp.producer;
  return c.json({ status: "published", exchange: producer?.exchange ?? "", routing_key: producer?.routing_key ?? "" }, 202);
};

/**
 * GET and the other consuming methods: one message with its content type (200), or 204 when the
 * queue is empty.
 */
export const consume = async (c: Context<GatewayEnv>, target: RouteTarget): Promise<Response> => {
  const outcome = await callRouteObject(target.id, async (): Promise<ConsumeOutcome> => routeObject(c.env, target.id).consume(target));
  if (!outcome.ok) throw failureError(outcome.kind, outcome.message, target.id);
  const message = outcome.message;
  if (!message) return c.body(null, 204);
  return c.body(message.body, 200, { "Content-Type": message.contentType ?? DEFAULT_CONTENT_TYPE });
};

/**
 * A call to the route's Durable Object. If the call itself fails (the object was reset by a
 * deploy, or is overloaded), the client gets a 503 it may retry rather than a 500.
 */
const callRouteObject = async <T>(routeId: string, call: () => Promise<T>): Promise<T> => {
  try {
    return await call();
  } catch (error) {
    console.error(`route ${routeId}: durable object call failed`, error);
    throw new GatewayError(503, "the route's connection holder is restarting; retry", routeId, {
      "Retry-After": String(RETRY_AFTER_SECONDS),
    });
  }
};
