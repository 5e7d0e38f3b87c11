import { Hono, type Context, type MiddlewareHandler } from "hono";
import { openApiDocument } from "./openapi";
import { adminAuth } from "./admin-auth";
import { HTTPException } from "hono/http-exception";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import { isPublishMethod, type GatewayConfig, type RouteConfig } from "../config/schema";
import { consumes, publishes } from "../contract/route-settings";
import type { GatewayEnv } from "../env";
import { authenticate } from "./access/authenticate";
import { corsPolicy } from "./access/cors-policy";
import { adminStats } from "./admin-stats";
import { consume } from "./consume-handler";
import { settleBody, settleLeases, type LeaseVerb } from "./lease-handlers";
import { publish, publishBody } from "./publish-handler";
import { fetchReply } from "./reply-handler";
import { GatewayError } from "./gateway-error";
import { health } from "./health";
import { mountPushControl } from "./push-handlers";
import { mountDeadLetters } from "./dead-letter-handlers";
import { mountManagementApi } from "./management-api";
import { requestLog } from "./request-log";
import { TRACEPARENT, TRACESTATE, traceContextOf } from "../contract/trace-context";
import { unreadBodyError } from "./request-body";
import { groupRoutes, routeForMethod, type RouteGroup } from "./route-groups";

/**
 * The gateway for one validated configuration, `${NAME}` resolved: `/amqp` for stats, `/healthz`
 * and `/readyz` for process managers and load balancers, then each
 * path of routes.yaml. Every failure becomes JSON in `onError`; nothing else writes an error
 * response.
 *
 * A request to a route passes, in order: its `cors` (a disallowed Origin is 403; the CORS
 * headers go on every answer), its `auth` (401/403), then the handler, whose call to the route's
 * object applies `rate_limit` (429) before anything reaches the broker.
 */
export const createApp = (config: GatewayConfig) => {
  const app = new Hono<GatewayEnv>();
  app.use(
    "*",
    requestLog(),
    requestId(),
    // The request's traceparent, or a trace of the gateway's own: what a published message carries.
    async (c, next) => {
      c.set("trace", traceContextOf(c.req.header(TRACEPARENT), c.req.header(TRACESTATE)));
      await next();
    },
    // API answers: no CSP or frame rules that only an HTML page needs (the status page sets its own).
    secureHeaders({ crossOriginResourcePolicy: false, crossOriginOpenerPolicy: false }),
  );
  app.route("/", adminStats(config));
  // The routes as OpenAPI 3.1, for client generators and API catalogues.
  const openapi = (c: Context<GatewayEnv>) => c.json(openApiDocument(config, new URL(c.req.url).origin));
  if (config.admin.openapi === "private") app.get("/openapi.json", adminAuth, openapi);
  else app.get("/openapi.json", openapi);
  app.route("/", health(config));
  // Before the routes: a route on /api (the documentation's own example) could cover these paths.
  if (config.management_api) mountManagementApi(app, config.management_api);
  // Before the routes' own paths, which a path_prefix route would otherwise cover.
  for (const route of config.routes) {
    if (!consumes(route) || route.amqp.consumer.ack !== "lease") continue;
    for (const verb of ["ack", "nack", "extend"] as const) {
      const settle: MiddlewareHandler<GatewayEnv> = (c) => settleLeases(c, route, verb);
      app.options(leasePath(route.path, verb), corsPolicy(route.cors, ["POST"], route.id));
      app.on(["POST"], leasePath(route.path, verb), ...accessChain(route, ["POST"]), ...settleBody(route, verb), settle);
    }
  }
  for (const route of config.routes) if (consumes(route) && route.amqp.consumer.push) mountPushControl(app, route);
  for (const route of config.routes)
    if (consumes(route) && route.amqp.consumer.dead_letter_queue !== undefined) mountDeadLetters(app, route);
  for (const route of config.routes) {
    if (!publishes(route) || !route.amqp.producer.reply) continue;
    const path = `${route.path.replace(/\/+$/, "")}/replies/:reply_id`;
    app.options(path, corsPolicy(route.cors, ["GET"], route.id));
    app.on(["GET"], path, ...accessChain(route, ["GET"]), (c) => fetchReply(c, route));
  }
  // A path may be matched by several groups (an exact route and a prefix route on the same base):
  // each group that does not serve the method passes the request on, and the last handler answers
  // 405 (or OPTIONS) with every method that some matching route serves.
  for (const group of groupRoutes(config.routes)) {
    // For the answers of the group as a whole (405): the headers of its first route's cors, no
    // refusal (the route that serves a method refuses for itself).
    const groupCors = corsPolicy(group.routes[0]?.cors, group.allowed, null, { refuseOrigins: false });
    for (const pattern of group.patterns) {
      app.options(pattern, preflight(group));
      for (const route of group.routes) for (const [methods, chain] of routeChains(route)) app.on(methods, pattern, ...chain);
      app.all(pattern, (c, next) => {
        c.set("allowed", new Set([...(c.get("allowed") ?? []), ...group.allowed]));
        c.set("routeIds", [...new Set([...(c.get("routeIds") ?? []), ...group.routes.map((one) => one.id)])]);
        // A preflight goes on to the next group (an exact and a prefix route on one path): hono's
        // cors would answer it here.
        return c.req.method === "OPTIONS" ? next() : groupCors(c, next);
      });
    }
  }
  const defaultCors = corsPolicy(config.cors, [], null, { refuseOrigins: false });
  app.all("*", async (c) => {
    const allowed = c.get("allowed");
    const path = new URL(c.req.url).pathname;
    if (!allowed) {
      // No route here: the top-level cors decides whether a page may read the 404.
      await defaultCors(c, () => Promise.resolve());
      throw new GatewayError(404, `no route for ${c.req.method} ${path}`, null);
    }
    const allow = [...allowed, "OPTIONS"].join(", ");
    // OPTIONS never touches the broker; it says what the path accepts.
    if (c.req.method === "OPTIONS") return c.body(null, 204, { Allow: allow });
    const reason =
      c.req.method === "HEAD"
        ? "HEAD is not served: it would take a message and throw its body away; use GET"
        : `${c.req.method} is not served here`;
    throw new GatewayError(405, reason, (c.get("routeIds") ?? []).join(","), { Allow: allow });
  });
  app.onError((thrown, c) => {
    // A body that its client stopped sending fails wherever it was being read: the client's doing.
    const error = unreadBodyError(c, thrown) ?? thrown;
    // Through the context, so that headers set before the failure (X-Request-Id, CORS) stay on it.
    if (error instanceof GatewayError) {
      c.set("failure", error.message);
      // The log line names the route the answer names (a 405 or a refused origin included).
      if (error.route !== null) c.set("routeId", error.route);
      return c.json(error.body(), error.status, error.headers);
    }
    if (error instanceof HTTPException) return error.getResponse();
    console.error("unhandled error", error);
    c.set("failure", "internal error in the gateway");
    return c.json({ error: "internal error in the gateway", route: null }, 500);
  });
  return app;
};

type Chain = [MiddlewareHandler<GatewayEnv>, ...Array<MiddlewareHandler<GatewayEnv>>];

/**
 * The middleware and handlers of one route: for the methods it publishes with, its access chain,
 * its body (bounded, read whole) and the publish; for those it consumes with, its access chain and the consume.
 */
const routeChains = (route: RouteConfig): Array<[string[], Chain]> => {
  const access = accessChain(route, route.methods);
  const chains: Array<[string[], Chain]> = [];
  const publishing = route.methods.filter(isPublishMethod);
  // The schema guarantees a producer for each publishing method in `route.methods`, and a
  // consumer for each consuming one.
  if (publishing.length > 0 && publishes(route)) {
    chains.push([publishing, [...access, ...publishBody(route), async (c) => await publish(c, route)]]);
  }
  const consuming = route.methods.filter((method) => !isPublishMethod(method));
  // A push route's GET is its state (mountPushControl), not a consume.
  if (consuming.length > 0 && consumes(route) && !route.amqp.consumer.push) {
    const handler: MiddlewareHandler<GatewayEnv> = async (c, next) => {
      // Hono routes HEAD to GET handlers; HEAD would take a message and drop its body, so it
      // goes on to the 405.
      if (c.req.method === "HEAD") return next();
      return await consume(c, route);
    };
    chains.push([consuming, [...access, handler]]);
  }
  return chains;
};

/** What every request to a route passes first: its name for the log, its `cors`, its `auth`. */
const accessChain = (route: RouteConfig, methods: readonly string[]): Chain => {
  const auth = authenticate(route);
  const named: MiddlewareHandler<GatewayEnv> = async (c, next) => {
    c.set("routeId", route.id);
    await next();
  };
  return [named, corsPolicy(route.cors, methods, route.id), ...(auth ? [auth] : [])];
};

/** `POST <path>/ack` and `/nack`. */
const leasePath = (path: string, verb: LeaseVerb): string => `${path.replace(/\/+$/, "")}/${verb}`;

/**
 * A CORS preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered with the `cors`
 * of the route that serves the method asked for; it never reaches the broker.
 */
const preflight = (group: RouteGroup): MiddlewareHandler<GatewayEnv> => {
  const policies = new Map(group.routes.map((route) => [route, corsPolicy(route.cors, route.methods, route.id)]));
  return async (c, next) => {
    const requested = c.req.header("access-control-request-method");
    const route = requested && c.req.header("origin") ? routeForMethod(group, requested.toUpperCase()) : undefined;
    const policy = route && policies.get(route);
    if (!route || !policy) return next();
    c.set("routeId", route.id);
    // Awaited here: a refusal that is already settled when returned would count as unhandled.
    return await policy(c, next);
  };
};
