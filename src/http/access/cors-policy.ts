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
  "Idempotent-Replayed",
  "Location",
];

/**
 * A route's `cors` as middleware (hono/cors), preceded by the check that CORS alone does not make:
 * a request from a web page is refused with 403 before anything else runs unless the page's
 * origin is listed in `cors.allow_origins` (or that is `"*"`). CORS only keeps a page from reading
 * the answer; a "simple" cross-origin POST, or an `<img>` pointing at a consuming route, would
 * still publish or take a message. A request is from a page when it carries `Origin`, or
 * `Sec-Fetch-Site` other than `none` (a request the browser makes without CORS). There is no
 * same-origin exemption: the gateway serves no pages that call its routes, and a `Host` header
 * can be made to match (DNS rebinding). Requests without either (curl, servers, a typed-in URL)
 * are not affected. `refuseOrigins: false` is for answers that reach no route (404, 405).
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
  const allowed = new Set(policy?.allow_origins ?? []);
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
    if (refuseOrigins && !anyOrigin) {
      const origin = c.req.header("origin");
      const site = c.req.header("sec-fetch-site");
      const fromPage = origin !== undefined || (site !== undefined && site !== "none");
      if (fromPage && !(origin !== undefined && allowed.has(origin))) throw refusal(policy !== undefined, origin, routeId);
    }
    return handler ? await handler(c, next) : await next();
  };
  return guard;
};

const refusal = (hasCors: boolean, origin: string | undefined, routeId: string | null): GatewayError => {
  // Bounded: the header is the client's, and it is echoed into the answer and the log.
  const shown = origin === undefined ? "a page request without Origin" : `origin ${origin.slice(0, 120)}${origin.length > 120 ? "…" : ""}`;
  const reason = hasCors
    ? `${shown} is not allowed on this route (cors.allow_origins)`
    : `requests from web pages are not allowed on this route (${shown}); list the page's origin in cors.allow_origins`;
  return new GatewayError(403, reason, routeId);
};
