import type { TraceContext } from "./contract/trace-context";
import type { HTTPException } from "hono/http-exception";
import type { RouteDirectory } from "./contract/route-calls";
import type { AmqpRouteObject } from "./amqp/route-object";

/** The Worker's bindings (wrangler.toml) and environment (vars and secrets). */
export interface Env {
  /** One Durable Object per route, keyed by route id. */
  AMQP_ROUTE: DurableObjectNamespace<AmqpRouteObject>;
  /**
   * Set by the Node and Deno servers, which hold every route shard in their own process: used
   * instead of `AMQP_ROUTE` (src/server/local-routes.ts).
   */
  ROUTE_DIRECTORY?: RouteDirectory;
  /** When set, `GET /amqp` requires `Authorization: Bearer <ADMIN_TOKEN>`. */
  ADMIN_TOKEN?: string;
  /** `debug`, `info` (default), `warn` or `error`: the least severe log line written. */
  LOG_LEVEL?: string;
  /** `json` (default: one JSON object per line) or `pretty` (for a terminal). */
  LOG_FORMAT?: string;
  /** Anything `${NAME}` in routes.yaml refers to. */
  [name: string]: unknown;
}

/** Hono's environment type for this gateway. */
export interface GatewayEnv {
  Bindings: Env;
  Variables: {
    /** Methods that routes matching the path serve, gathered as a request passes routes that do not serve its method. */
    allowed?: Set<string>;
    /** Those routes' ids, for the 405's `route`. */
    routeIds?: string[];
    /**
     * Who called, once `auth` accepted them: `key:<digest>`, `user:<name>` or `sub:<sub>[@<iss>]`;
     * never a credential. What `rate_limit` counts by, and whose `Idempotency-Key`s a key is among.
     */
    caller?: string;
    /** Set by hono/request-id: the request's `X-Request-Id`. */
    requestId?: string;
    /** The request's W3C trace context, or one the gateway started (src/http/trace-context.ts). */
    trace?: TraceContext;
    /** The route that served the request, for its log line. */
    routeId?: string;
    /** Why the request failed, for its log line (the JSON error's text). */
    failure?: string;
    /**
     * Set while the request's body is being read (request-body.ts): the 400 a failure meanwhile
     * becomes, or the answer already decided (the isolate had no room for the rest of it: 503).
     */
    unreadBody?: { reason: string; route: string } | HTTPException | undefined;
  };
}
