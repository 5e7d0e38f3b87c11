import type { MiddlewareHandler } from "hono";
import type { GatewayEnv } from "../env";
import { createLogger, type Logger } from "../log";

const loggers = new WeakMap<object, Logger>();

/**
 * One log line per request, once it is answered: its id, its trace id (W3C trace context), route, method, path (without the query,
 * which may hold an API key), status, duration, bytes in and out, and for a failure the reason
 * the client was given. 5xx are `error`, 4xx `warn`, the rest `info`.
 */
export const requestLog = (): MiddlewareHandler<GatewayEnv> => async (c, next) => {
  const started = Date.now();
  await next();
  let logger = loggers.get(c.env);
  if (!logger) loggers.set(c.env, (logger = createLogger(c.env)));
  const status = c.res.status;
  logger.log(status >= 500 ? "error" : status >= 400 ? "warn" : "info", "request", {
    request_id: c.get("requestId"),
    trace_id: c.get("trace")?.traceId,
    route: c.get("routeId") ?? null,
    method: c.req.method,
    path: c.req.path,
    status,
    duration_ms: Date.now() - started,
    bytes_in: Number(c.req.header("content-length") ?? 0),
    bytes_out: Number(c.res.headers.get("content-length") ?? 0) || undefined,
    error: c.get("failure"),
  });
};
