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
  "X-Delivery-Count",
  "traceparent",
  "tracestate",
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
 * `Sec-Fetch-Site` other than `none` (a request the browser makes without CORS). Requests without
 * either (curl, servers, a typed-in URL) are not affected. `refuseOrigins: false` is for answers
 * that reach no route (404, 405).
 *
 * The page's origin is its `Origin`; without one, a request with `Sec-Fetch-Site: same-origin`
 * comes from a page of the request's own origin: browsers send no `Origin` on a same-origin GET
 * or EventSource. That origin is the request URL's scheme and host, which workerd builds from
 * the `Host` header (deployed, Cloudflare routes only the hostnames configured for the Worker),
 * so it is listed or not like any other: a DNS-rebinding page (`evil.example` pointed at the
 * gateway, same-origin to the browser) arrives with `Host: evil.example`, an origin no route
 * lists. Without `Origin` and other than same-origin (an `<img>` on another site), the page's
 * origin is unknown, and the request refused.
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
      const page = pageOrigin(c.req.header("origin"), c.req.header("sec-fetch-site"), c.req.url);
      if (page && !(page.origin !== undefined && allowed.has(page.origin))) throw refusal(policy !== undefined, page, routeId);
    }
    return handler ? await handler(c, next) : await next();
  };
  return guard;
};

/** Who calls, as far as the browser says: undefined for no page at all, else the page's origin when it is known. */
interface PageCaller {
  origin: string | undefined;
  /** How the origin was known: its `Origin` header, or `Sec-Fetch-Site: same-origin` and the request's own URL. */
  from: "origin" | "same-origin" | "unknown";
  site: string | undefined;
}

/** The page behind a request, from its `Origin`, its `Sec-Fetch-Site` and, for a same-origin one, its own URL. */
const pageOrigin = (origin: string | undefined, site: string | undefined, url: string): PageCaller | undefined => {
  if (origin !== undefined) return { origin, from: "origin", site };
  if (site === undefined || site === "none") return undefined;
  if (site === "same-origin") return { origin: new URL(url).origin, from: "same-origin", site };
  return { origin: undefined, from: "unknown", site };
};

const refusal = (hasCors: boolean, page: PageCaller, routeId: string | null): GatewayError => {
  // Bounded: the header is the client's, and it is echoed into the answer and the log.
  const shown = (text: string) => `${text.slice(0, 120)}${text.length > 120 ? "…" : ""}`;
  const who =
    page.origin === undefined
      ? `a page request without Origin (Sec-Fetch-Site: ${shown(page.site ?? "")})`
      : page.from === "same-origin"
        ? `a page of ${shown(page.origin)} (same-origin, by its Host)`
        : `origin ${shown(page.origin)}`;
  const reason = hasCors
    ? `${who} is not allowed on this route (cors.allow_origins)`
    : `requests from web pages are not allowed on this route (${who}); list the page's origin in cors.allow_origins`;
  return new GatewayError(403, reason, routeId);
};
