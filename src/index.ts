/**
 * The Worker: the routes compiled from routes.yaml at build time (`scripts/compile-routes.ts`),
 * served by Hono, and the Durable Object class that holds each route's broker connection.
 */
import { routesConfig } from "./generated/routes";
import { createGateway } from "./http/gateway";

export { AmqpRouteObject } from "./amqp/route-object";

export default createGateway(routesConfig);
