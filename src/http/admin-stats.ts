import { Hono } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { timingSafeEqual } from "hono/utils/buffer";
import { redactUrl } from "../amqp/broker-url";
import type { RouteStats } from "../amqp/route-messages";
import type { GatewayConfig } from "../config/schema";
import type { GatewayEnv } from "../env";
import { resolvedRoutes } from "./resolved-config";
import { routeObject } from "./route-target";

/** One entry of `GET /amqp`: the seed's fields, the password in `url` shown as `***`. */
export type RouteStatsEntry = RouteStats & { url: string };

const unauthorized = (message: string) => ({ message: { error: message, route: null } });

/**
 * `GET /amqp`: per-route counters, read from each route's Durable Object. When `ADMIN_TOKEN` is
 * set it requires `Authorization: Bearer <ADMIN_TOKEN>`.
 */
export const adminStats = (config: GatewayConfig) => {
  const app = new Hono<GatewayEnv>();
  const requireToken = bearerAuth<GatewayEnv>({
    verifyToken: (token, c) => timingSafeEqual(c.env.ADMIN_TOKEN ?? "", token),
    noAuthenticationHeader: unauthorized("this endpoint requires Authorization: Bearer <ADMIN_TOKEN>"),
    // Malformed headers get 401 too: to a client, any unusable credential is the same failure.
    invalidAuthenticationHeader: {
      message: (c) => c.json({ error: "malformed Authorization header; expected Bearer <ADMIN_TOKEN>", route: null }, 401),
    },
    invalidToken: unauthorized("invalid token"),
  });
  app.use("/amqp", (c, next) => (c.env.ADMIN_TOKEN ? requireToken(c, next) : next()));
  app.get("/amqp", async (c) => {
    const routes = [...resolvedRoutes(config, c.env).values()].filter((route) => route.amqp?.enabled);
    const entries = await Promise.all(
      routes.map(async (route): Promise<[string, RouteStatsEntry]> => {
        const stats = await routeObject(c.env, route.id).stats();
        return [route.id, { url: redactUrl(route.amqp?.url ?? ""), ...stats }];
      }),
    );
    return c.json(Object.fromEntries(entries));
  });
  return app;
};
