import type { RouteConfig } from "../config/schema";
import type { RouteTarget } from "../amqp/route-messages";
import type { Env } from "../env";
import { GatewayError } from "./gateway-error";
import { resolvedRoutes } from "./resolved-config";
import type { GatewayConfig } from "../config/schema";

/** The resolved route, as the Durable Object receives it. */
export const routeTarget = (config: GatewayConfig, env: Env, route: RouteConfig): RouteTarget => {
  const resolved = resolvedRoutes(config, env).get(route.id);
  const amqp = resolved?.amqp;
  if (!amqp?.enabled || amqp.url === undefined) throw new GatewayError(500, "the route has no AMQP backend", route.id);
  return { id: route.id, amqp: { ...amqp, url: amqp.url } };
};

/** The route's Durable Object. */
export const routeObject = (env: Env, routeId: string) => env.AMQP_ROUTE.get(env.AMQP_ROUTE.idFromName(routeId));
