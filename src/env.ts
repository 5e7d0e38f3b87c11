import type { AmqpRouteObject } from "./amqp/route-object";

/** The Worker's bindings (wrangler.toml) and environment (vars and secrets). */
export interface Env {
  /** One Durable Object per route, keyed by route id. */
  AMQP_ROUTE: DurableObjectNamespace<AmqpRouteObject>;
  /** When set, `GET /amqp` requires `Authorization: Bearer <ADMIN_TOKEN>`. */
  ADMIN_TOKEN?: string;
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
  };
}
