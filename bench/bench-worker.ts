/**
 * The gateway as deployed, plus one baseline route for the benchmark: `POST /__ceiling` reads the
 * body, makes one call to a Durable Object and answers 202, without any AMQP work. It is what the
 * HTTP runtime and the Worker → object hop alone can do on this machine, the ceiling for the
 * gateway's publish route. (The body must be read: a route that leaves it unread breaks
 * keep-alive connections in workerd under load.)
 */
import { Hono } from "hono";
import type { GatewayEnv } from "../src/env";
import gateway from "../src/index";

export { AmqpRouteObject } from "../src/index";

const bench = new Hono<GatewayEnv>();
bench.post("/__ceiling", async (c) => {
  await c.req.arrayBuffer();
  await c.env.AMQP_ROUTE.get(c.env.AMQP_ROUTE.idFromName("__ceiling")).stats();
  return c.json({ status: "published" }, 202);
});
bench.all("*", (c) => gateway.fetch(c.req.raw, c.env, c.executionCtx));

export default bench;
