/**
 * The gateway as deployed, plus one baseline route for the benchmark: `POST /__ceiling/<route id>`
 * reads the body, calls the route's Durable Object with the message, exactly as a publish does,
 * and answers 202; the object answers "confirmed" without any AMQP work. It is what the HTTP
 * runtime and the Worker → object hop alone can do on this machine, the ceiling for the route's
 * publishes. (The body must be read: a route that leaves it unread breaks keep-alive connections
 * in workerd under load.)
 *
 * Requests are told apart before either Hono app sees them, so the gateway's routes and the
 * ceiling each pay for one router, as the gateway does when deployed.
 */
import { Hono } from "hono";
import type { Env, GatewayEnv } from "../src/env";
import gateway, { AmqpRouteObject as GatewayRouteObject } from "../src/index";
import { routesConfig } from "../src/generated/routes";
import type { PublishManyOutcome, PublishManyRequest } from "../src/amqp/route-messages";
import { routeObject } from "../src/http/route-target";
import { resolveConfig } from "../src/config/resolve-config";

export class AmqpRouteObject extends GatewayRouteObject {
  /** What `publishMany` receives, answered as if every message were confirmed. */
  acceptWithoutPublishing(request: PublishManyRequest): PublishManyOutcome {
    return { outcomes: request.messages.map(() => ({ ok: true })) };
  }
}

const CEILING_PREFIX = "/__ceiling/";

const resolvedConfigs = new WeakMap<Env, ReturnType<typeof resolveConfig>>();
const resolvedFor = (env: Env): ReturnType<typeof resolveConfig> => {
  let resolved = resolvedConfigs.get(env);
  if (!resolved) resolvedConfigs.set(env, (resolved = resolveConfig(routesConfig, env)));
  return resolved;
};

const ceiling = new Hono<GatewayEnv>();
ceiling.post(`${CEILING_PREFIX}:route`, async (c) => {
  // Resolved once per environment, as the gateway does (src/http/gateway.ts).
  const resolved = resolvedFor(c.env);
  const target = resolved.ok ? resolved.config.routes.find((candidate) => candidate.id === c.req.param("route")) : undefined;
  if (!target?.amqp.producer) return c.json({ error: "no such route" }, 404);
  const body = await c.req.arrayBuffer();
  const object = routeObject(c.env, target) as unknown as DurableObjectStub<AmqpRouteObject>;
  const contentType = c.req.header("content-type") ?? "application/json";
  await object.acceptWithoutPublishing({
    route: { ...target, amqp: { ...target.amqp, producer: target.amqp.producer } },
    messages: [{ body, properties: { contentType } }],
  });
  return c.json({ status: "published" }, 202);
});

export default {
  fetch: (request: Request, env: Env, ctx: ExecutionContext) =>
    request.url.includes(CEILING_PREFIX) ? ceiling.fetch(request, env, ctx) : gateway.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
