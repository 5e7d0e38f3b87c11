import { Hono } from "hono";
import { timingSafeEqual } from "hono/utils/buffer";
import { redactUrl } from "../contract/redaction";
import { ZERO_COUNTERS } from "../contract/route-calls";
import type { RouteCounters, RouteStats } from "../contract/route-calls";
import type { GatewayConfig, RouteConfig } from "../config/schema";
import type { Env, GatewayEnv } from "../env";
import { basicCredentials, bearerToken } from "./access/credentials";
import { routeClient } from "./route-client";
import { statusPage } from "./status-page";

/**
 * One entry of `GET /amqp`: runway's fields (the password in `url` shown as `***`), summed over
 * the route's shards, and for a sharded route each shard's own figures.
 */
export type RouteStatsEntry = RouteStats & { url: string; shards?: Array<RouteStats & { shard: number }> };

/**
 * `GET /amqp`: per-route counters, read from each route's Durable Objects, as JSON; or, for a
 * browser (`Accept: text/html`), a status page that shows them live. When `ADMIN_TOKEN` is set it
 * requires `Authorization: Bearer <ADMIN_TOKEN>`, or HTTP basic auth with the token as the
 * password (any user name): a browser cannot add a bearer header when it navigates, but it asks
 * for basic credentials when told to.
 */
export const adminStats = (config: GatewayConfig) => {
  const app = new Hono<GatewayEnv>();
  app.use("/amqp", async (c, next) => {
    const token = c.env.ADMIN_TOKEN;
    if (token === undefined || token === "") return next();
    // A token of spaces would match an empty password (HTTP drops outer spaces): keep /amqp closed.
    if (token.trim() === "") return c.json({ error: "ADMIN_TOKEN is set but blank; set a real token", route: null }, 500);
    const header = c.req.header("authorization");
    const failure = /^Basic /i.test(header ?? "") ? await basicFailure(header ?? "", token) : await bearerFailure(header, token);
    if (!failure) return next();
    const challenge = wantsPage(c.req.header("accept")) ? 'Basic realm="amqp", charset="UTF-8"' : 'Bearer realm="amqp"';
    return c.json({ error: failure, route: null }, 401, { "WWW-Authenticate": challenge });
  });
  app.get("/amqp", async (c) => {
    if (wantsPage(c.req.header("accept"))) return c.html(statusPage(config.routes));
    const entries = await Promise.all(config.routes.map(async (route) => [route.id, await routeStats(c.env, route)] as const));
    return c.json(Object.fromEntries(entries));
  });
  return app;
};

/**
 * Why `header` does not carry `Bearer <token>`, or undefined when it does. The token after the
 * scheme is compared as it was sent (in constant time), not parsed as RFC 6750's token68, which
 * hono's bearerAuth requires: an ADMIN_TOKEN such as `Adm!n:T0ken` would otherwise lock `/amqp`.
 */
const bearerFailure = async (header: string | undefined, token: string): Promise<string | undefined> => {
  if (header === undefined) return "this endpoint requires Authorization: Bearer <ADMIN_TOKEN>";
  const sent = bearerToken(header);
  if (sent === undefined) return "malformed Authorization header; expected Bearer <ADMIN_TOKEN>";
  // HTTP drops a header value's outer spaces, so a token's own could never arrive: compare without them.
  return (await timingSafeEqual(token.trim(), sent)) ? undefined : "invalid token";
};

/** A browser navigating (it asks for HTML); JSON clients, curl's `*\/*` included, keep getting JSON. */
const wantsPage = (accept: string | undefined): boolean => accept?.includes("text/html") ?? false;

/** Why a basic `header` does not carry the token as its password (any user name), or undefined when it does. */
const basicFailure = async (header: string, token: string): Promise<string | undefined> => {
  const credentials = basicCredentials(header);
  if (!credentials) return "malformed Authorization header; expected Basic credentials with ADMIN_TOKEN as the password";
  return (await timingSafeEqual(token.trim(), credentials.password)) ? undefined : "invalid token";
};

const routeStats = async (env: Env, target: RouteConfig): Promise<RouteStatsEntry> => {
  const shards = await Promise.all(
    Array.from({ length: target.amqp.shards }, async (_, shard) => ({
      shard,
      ...(await routeClient(env, target, shard).object().stats(target.amqp.url)),
    })),
  );
  const total = shards.reduce<RouteStats>(
    (sum, one) => {
      const counters = Object.fromEntries(
        (Object.keys(ZERO_COUNTERS) as Array<keyof RouteCounters>).map((name) => [name, sum[name] + one[name]]),
      ) as unknown as RouteCounters;
      const last_error = !sum.last_error || (one.last_error && one.last_error.at > sum.last_error.at) ? one.last_error : sum.last_error;
      return { ...counters, connected: sum.connected || one.connected, last_error };
    },
    { ...ZERO_COUNTERS, connected: false, last_error: null },
  );
  return { url: redactUrl(target.amqp.url), ...total, ...(shards.length > 1 ? { shards } : {}) };
};
