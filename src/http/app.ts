import { Hono, type Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { isPublishMethod, type GatewayConfig } from "../config/schema";
import type { GatewayEnv } from "../env";
import { adminStats } from "./admin-stats";
import { consume, publish } from "./amqp-handlers";
import { GatewayError } from "./gateway-error";
import { groupRoutes, routeForMethod, type RouteGroup } from "./route-groups";
import { routeTarget } from "./route-target";

/**
 * The gateway for one validated configuration: `/amqp` for stats, then each path of
 * routes.yaml. Every failure becomes JSON in `onError`; nothing else writes an error response.
 */
export const createApp = (config: GatewayConfig) => {
  const app = new Hono<GatewayEnv>();
  app.route("/", adminStats(config));
  for (const group of groupRoutes(config.routes)) {
    for (const pattern of group.patterns) app.all(pattern, (c) => serve(c, group));
  }
  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${new URL(c.req.url).pathname}`, route: null }, 404));
  app.onError((error, c) => {
    if (error instanceof HTTPException) return error.getResponse();
    console.error("unhandled error", error);
    return c.json({ error: "internal error in the gateway", route: null }, 500);
  });
  return app;

  function serve(c: Context<GatewayEnv>, group: RouteGroup) {
    const method = c.req.method;
    const allow = [...group.allowed, "OPTIONS"].join(", ");
    const ids = group.routes.map((route) => route.id).join(",");
    // OPTIONS never touches the broker; it says what the path accepts (and is where CORS will answer).
    if (method === "OPTIONS") return c.body(null, 204, { Allow: allow });
    const route = routeForMethod(group, method);
    if (!route) {
      const reason =
        method === "HEAD" ? "HEAD is not served: it would take a message and throw its body away; use GET" : `${method} is not served here`;
      throw new GatewayError(405, reason, ids, { Allow: allow });
    }
    const target = routeTarget(config, c.env, route);
    return isPublishMethod(method) ? publish(c, target) : consume(c, target);
  }
};
