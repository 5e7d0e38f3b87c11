import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import type { CorsConfig } from "../../config/access-schema";
import type { GatewayEnv } from "../../env";
import { GatewayError } from "../gateway-error";

/**
 * Response headers a page may read by default: every header the gateway sets. With credentials
 * browsers take no `*`, so the fixed ones are listed too (the message's own `X-AMQP-Header-*`
 * then need `expose_headers`).
 */
const GATEWAY_HEADERS = [
  "X-Request-Id",
  "X-Message-Id",
  "X-Correlation-Id",
  "X-Exchange",
  "X-Routing-Key",
  "X-Redelivered",
  "X-Message-Count",
  "X-AMQP-Encoded",
  "X-AMQP-Omitted",
  "Retry-After",
  "Allow",
  "WWW-Authenticate",
];

/**
 * A route's `cors` as middleware (hono/cors), preceded by the check that CORS alone does not make:
 * a request whose `Origin` the route does not allow is refused with 403 before anything else
 * runs. (CORS only keeps a page from reading the answer; a "simple" cross-origin POST would still
 * publish.) A route without `cors` takes same-origin requests and those without `Origin` (curl,
 * servers) only. (`refuseOrigins: false` is for answers that reach no route, such as a 404.)
 *
 * The headers are set before the rest of the chain runs, so every answer carries them, errors
 * included: a page can read a 401's or a 429's JSON instead of "Failed to fetch".
 */
export const corsPolicy = (
  policy: CorsConfig | undefined,
  methods: readonly string[],
  routeId: string | null,
  { refuseOrigins = true }: { refuseOrigins?: boolean } = {},
): MiddlewareHandler<GatewayEnv> => {
  const anyOrigin = policy?.allow_origins.includes("*") ?? false;
  const handler = policy
    ? cors({
        origin: anyOrigin ? "*" : policy.allow_origins,
        allowMethods: [...methods, "OPTIONS"],
        ...(policy.allow_headers ? { allowHeaders: policy.allow_headers } : {}),
        exposeHeaders: policy.expose_headers ?? (policy.allow_credentials ? GATEWAY_HEADERS : ["*", ...GATEWAY_HEADERS]),
        credentials: policy.allow_credentials,
        maxAge: policy.max_age,
      })
    : undefined;
  const guard: MiddlewareHandler<GatewayEnv> = async (c, next) => {
    const origin = c.req.header("origin");
    if (
      refuseOrigins &&
      origin !== undefined &&
      !anyOrigin &&
      !(policy?.allow_origins.includes(origin) ?? false) &&
      origin !== new URL(c.req.url).origin
    ) {
      const reason = policy
        ? `origin ${origin} is not allowed on this route (cors.allow_origins)`
        : `cross-origin requests are not allowed on this route (origin ${origin}); list the origin in cors.allow_origins`;
      throw new GatewayError(403, reason, routeId);
    }
    return handler ? await handler(c, next) : await next();
  };
  return guard;
};
