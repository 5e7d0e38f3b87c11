import type { Context, Hono } from "hono";
import type { ConsumingRoute } from "../config/schema";
import type { PushAction, PushState } from "../contract/route-calls";
import type { GatewayEnv } from "../env";
import { adminAuth } from "./admin-auth";
import { failureError, GatewayError } from "./gateway-error";
import { everyShard, routeClient, routeObject } from "./route-client";
import type { Env } from "../env";
import type { RouteConfig } from "../config/schema";
import { consumes } from "../contract/route-settings";
import { createLogger } from "../log";

/** A push route's state, over its shards: running only when every shard runs. */
export interface PushStatus extends PushState {
  route: string;
  shards?: Array<PushState & { shard: number }>;
}

/**
 * A push route's state and control, behind the admin token as `/amqp` is: `GET <path>` answers
 * the push's state (and starts a shard that is not running, unless it is paused);
 * `POST <path>/pause` and `POST <path>/resume` stop and restart delivery on every shard.
 */
export const mountPushControl = (app: Hono<GatewayEnv>, route: ConsumingRoute): void => {
  const base = route.path.replace(/\/+$/, "");
  for (const [method, path, action] of [
    ["GET", route.path, "ensure"],
    ["POST", `${base}/pause`, "pause"],
    ["POST", `${base}/resume`, "resume"],
  ] as const) {
    app.on(
      [method],
      path,
      (c, next) => {
        c.set("routeId", route.id);
        // Hono routes HEAD to GET handlers: a HEAD must not start a push.
        if (c.req.method === "HEAD") {
          throw new GatewayError(405, "HEAD is not served on a push's state; use GET", route.id, {
            Allow: [...route.methods, "OPTIONS"].join(", "),
          });
        }
        if (method === "POST") controlRefusal(c, route.id);
        return next();
      },
      adminAuth,
      async (c) => c.json(await pushAll(c, route, action)),
    );
    if (method !== "POST") continue;
    // The control paths answer OPTIONS and other methods as every path does: 204 or 405, with Allow.
    app.options(path, (c) => c.body(null, 204, { Allow: "POST, OPTIONS" }));
    app.all(path, (c) => {
      throw new GatewayError(405, `${c.req.method} is not served here; a push is ${action}d with POST`, route.id, {
        Allow: "POST, OPTIONS",
      });
    });
  }
};

/** Why a pause or resume is refused before its credentials are read (see {@link adminClientOnly}). */
const controlRefusal = (c: Context<GatewayEnv>, routeId: string): void =>
  adminClientOnly(c, routeId, {
    noToken: "pausing or resuming a push needs ADMIN_TOKEN to be set",
    fromPage: "a push is paused or resumed by an admin client, not from a web page",
  });

/**
 * Refuses (403) an admin request that acts on a route before its credentials are read: there must
 * be an `ADMIN_TOKEN` to check (else anyone could), and, with `fromPage`, the request must not come
 * from a web page (a browser that holds the token as basic credentials would send them with a
 * page's form: CSRF).
 */
export const adminClientOnly = (c: Context<GatewayEnv>, routeId: string, reasons: { noToken: string; fromPage?: string }): void => {
  if (!c.env.ADMIN_TOKEN?.trim()) throw new GatewayError(403, reasons.noToken, routeId);
  if (reasons.fromPage === undefined) return;
  const site = c.req.header("sec-fetch-site");
  if (c.req.header("origin") !== undefined || (site !== undefined && site !== "none")) {
    throw new GatewayError(403, reasons.fromPage, routeId);
  }
};

/** Runs `action` on every shard of `route` (one at a time: a pause must reach them all), and sums their states. */
export const pushAll = async (c: Context<GatewayEnv>, route: ConsumingRoute, action: PushAction): Promise<PushStatus> => {
  const states: Array<PushState & { shard: number }> = [];
  for (const { shard } of everyShard([route])) {
    const answer = await routeClient(c.env, route, shard).call("settle", (object) => object.push(route, action));
    if ("ok" in answer) throw failureError(answer, route.id);
    states.push({ ...answer, shard });
  }
  // Running only when every shard runs; paused when any is (a pause reaches them all).
  const state = states.every((one) => one.state === "running")
    ? "running"
    : states.some((one) => one.state === "paused")
      ? "paused"
      : "starting";
  const newest = <T>(values: T[], at: (value: T) => string): T | null =>
    values.reduce<T | null>((best, value) => (best === null || at(value) > at(best) ? value : best), null);
  return {
    route: route.id,
    state,
    in_flight: states.reduce((sum, one) => sum + one.in_flight, 0),
    last_error: newest(
      states.flatMap((one) => (one.last_error ? [one.last_error] : [])),
      (error) => error.at,
    ),
    last_success_at: newest(
      states.flatMap((one) => (one.last_success_at ? [one.last_success_at] : [])),
      (at) => at,
    ),
    ...(states.length > 1 ? { shards: states } : {}),
  };
};

/**
 * Starts every push route's shards that are not running (and not paused): the Worker's cron
 * trigger calls it every minute, the Node and Deno servers once at start. A shard it cannot
 * reach is logged and tried again next time.
 */
export const ensurePushes = async (env: Env, routes: readonly RouteConfig[]): Promise<void> => {
  const pushing = routes.filter((route): route is ConsumingRoute => consumes(route) && route.amqp.consumer.push !== undefined);
  await Promise.all(
    everyShard(pushing).map(async ({ route, shard }) => {
      try {
        const answer = await routeObject(env, route, shard).push(route, "ensure");
        if ("ok" in answer) createLogger(env).log("warn", "push could not start", { route: route.id, shard, error: answer.message });
      } catch (error) {
        createLogger(env).log("warn", "push could not start", { route: route.id, shard, error: String(error) });
      }
    }),
  );
};
